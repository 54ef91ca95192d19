"""``PostgresBackend``: Directory, Queue, Blobs and Intake on one PostgreSQL database (issue 19).

One psycopg async connection pool per node; every method awaits its own round trips, so nothing
blocks the event loop. Each write is one transaction, durable at its commit (PostgreSQL folds
the commits of concurrent sessions into one WAL flush by itself). A write runs as a task of its
own that the caller only awaits: a caller that gives up (a session that closes, a server that
stops) does not undo it, and ``Queue.drain`` waits for every one handed over.

Errors: a database that cannot be reached (restarting, failed over, the pool exhausted) is an
``OSError`` (SMTP answers 451 4.3.0 and the client sends again); a full disk on the database
server is ``StorageFull`` (452). The pool replaces broken connections by itself, so the node
carries on once the database is back.

**Several nodes share the queue.** ``begin_attempt`` is the claim: it takes the entry's row with
``SELECT ... FOR UPDATE SKIP LOCKED`` (a row another node is claiming at this instant is
skipped, not waited for) and gives it a lease (``lease_owner``, ``lease_until`` on the
database's clock) unless another node's lease is still running, in which case it returns 0 and
the caller leaves the entry alone. While this node holds entries, a task renews their leases
every third of ``lease`` seconds; ``end_attempt``, ``retire`` and ``delete`` give them back. A
node that dies stops renewing: its leases run out and ``due`` shows the entry to the other
nodes again from that moment (until then, ``due`` reports the lease's expiry as the entry's
next attempt). Each recipient's result is committed by ``record_results`` as soon as it is
known, before the lease is given back, so a node taking over sends only to recipients still
pending. (What no protocol can close: a node killed between the remote's 250 and that commit
leaves the recipient pending, and it is sent again; RFC 5321 §6.1 accepts such duplicates.)

**Wake-ups.** Intake sends ``NOTIFY todoku_queue`` in the transaction that queues mail (and the
administration commands when they make entries due); every node LISTENs on a connection of its
own and hands other nodes' new entries to its ``on_queued`` listener, so a node's runner hears
of mail that another node accepted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from todoku.store.api import (
    Alias,
    IncomingMessage,
    QueueEntry,
    QueueRecipient,
    RecipientResult,
    SpooledBlob,
    StorageFull,
    User,
    queue_extra,
    tls_optional_in,
)
from todoku.store.backend import Storage
from todoku.store.content import BlobWriter
from todoku.store.directory import UserExists
from todoku.store.intake import QueuedListener
from todoku.store.mailboxes import INBOX, Change, ChangeHub, ChangeKind
from todoku.store.postgres import schema
from todoku.store.postgres.content import PgBlobs, PgContentWriter, insert_content
from todoku.store.postgres.folders import deliver_to_inbox
from todoku.store.postgres.mailboxes import MAIL_CHANNEL, PgMailboxes, change_notes
from todoku.store.queue import AttemptRecord, Due

T = TypeVar("T")
log = logging.getLogger("todoku.store.postgres")

QUEUE_CHANNEL = "todoku_queue"
# NOTIFY payloads are at most 8000 bytes: entries are announced in batches of this many.
NOTIFY_BATCH = 100


def default_node_name() -> str:
    """Unique per process: a restarted node must not mistake its predecessor's leases for its
    own (they run out, and the work is taken over, as for any other dead node)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def storage_error(exc: BaseException) -> OSError:
    """What a failed database operation means to the code that answers clients."""
    if isinstance(exc, psycopg.errors.DiskFull | psycopg.errors.OutOfMemory):
        return StorageFull(errno.ENOSPC, f"Insufficient system storage: {exc}")
    return OSError(errno.EIO, f"database unavailable: {exc}")


_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


class Database:
    """The pool, the event loop it lives on, and the tasks of the writes in flight."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]], timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise storage_error(exc) from exc

    async def read(self, call: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        async with self.connection() as conn:
            return await call(conn)

    async def _transaction(self, call: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    return await call(conn)
            except _UNAVAILABLE as exc:
                raise storage_error(exc) from exc

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_write(self, call: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``call`` in one transaction, not cancelled with the caller (module docstring)."""
        return await asyncio.shield(self.spawn(self._transaction(call)))

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


# ---------------------------------------------------------------------------- Directory


class PgDirectory:
    def __init__(self, db: Database, domains: tuple[str, ...]) -> None:
        self._db = db
        self._domains = tuple(d.lower() for d in domains)

    async def domains(self) -> tuple[str, ...]:
        return self._domains

    async def add_user(self, address: str, password_hash: str, *, admin: bool = False) -> None:
        async def add(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(
                "INSERT INTO users (address, password_hash, created_at, admin)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (address.lower(), password_hash, time.time(), admin),
            )
            if cur.rowcount == 0:
                raise UserExists(address.lower())

        await self._db.run_write(add)

    async def get_user(self, address: str) -> User | None:
        async def get(conn: AsyncConnection[Any]) -> User | None:
            cur = await conn.execute(
                "SELECT address, password_hash, created_at, admin FROM users WHERE address = %s",
                (address.lower(),),
            )
            row = await cur.fetchone()
            return User(*row) if row else None

        return await self._db.read(get)

    async def users(self) -> list[User]:
        async def every(conn: AsyncConnection[Any]) -> list[User]:
            cur = await conn.execute(
                "SELECT address, password_hash, created_at, admin FROM users"
                ' ORDER BY address COLLATE "C"'
            )
            return [User(*row) for row in await cur.fetchall()]

        return await self._db.read(every)

    async def _update(self, sql: str, args: tuple[Any, ...]) -> int:
        async def update(conn: AsyncConnection[Any]) -> int:
            return (await conn.execute(sql, args)).rowcount

        return await self._db.run_write(update)

    async def set_password(self, address: str, password_hash: str) -> bool:
        sql = "UPDATE users SET password_hash = %s WHERE address = %s"
        return await self._update(sql, (password_hash, address.lower())) > 0

    async def delete_user(self, address: str) -> bool:
        return await self._update("DELETE FROM users WHERE address = %s", (address.lower(),)) > 0

    async def is_admin(self, address: str) -> bool:
        user = await self.get_user(address)
        return user is not None and user.admin

    async def set_admin(self, address: str, admin: bool) -> bool:
        sql = "UPDATE users SET admin = %s WHERE address = %s"
        return await self._update(sql, (admin, address.lower())) > 0

    async def add_alias(self, source: str, target: str) -> None:
        await self._update(
            "INSERT INTO aliases (source, target) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (source.lower(), target.lower()),
        )

    async def delete_alias(self, source: str, target: str | None = None) -> int:
        if target is None:
            return await self._update("DELETE FROM aliases WHERE source = %s", (source.lower(),))
        return await self._update(
            "DELETE FROM aliases WHERE source = %s AND target = %s",
            (source.lower(), target.lower()),
        )

    async def aliases(self) -> list[Alias]:
        async def every(conn: AsyncConnection[Any]) -> list[Alias]:
            cur = await conn.execute(
                'SELECT source, target FROM aliases ORDER BY source COLLATE "C", target COLLATE "C"'
            )
            return [Alias(*row) for row in await cur.fetchall()]

        return await self._db.read(every)

    async def alias_targets(self, source: str) -> list[str]:
        async def targets(conn: AsyncConnection[Any]) -> list[str]:
            cur = await conn.execute(
                'SELECT target FROM aliases WHERE source = %s ORDER BY target COLLATE "C"',
                (source.lower(),),
            )
            return [row[0] for row in await cur.fetchall()]

        return await self._db.read(targets)


# ---------------------------------------------------------------------------- Queue

_ENTRY_COLUMNS = (
    "id, blob_id, sender, size, received_at, next_attempt, attempts, held, envid, ret,"
    " smtputf8, last_error, delay_warned, submitted_by, requiretls, extra"
)
_RECIPIENT_COLUMNS = (
    "queue_id, address, orcpt, notify, state, last_reply, phase, code, enhanced, remote_mta,"
    " reason, status, reported, updated_at"
)


def _entry(row: Sequence[Any], recipients: Sequence[Sequence[Any]]) -> QueueEntry:
    return QueueEntry(
        id=row[0],
        blob_id=row[1],
        sender=row[2],
        size=row[3],
        received_at=row[4],
        next_attempt=row[5],
        attempts=row[6],
        held=row[7],
        envid=row[8],
        ret=row[9],
        smtputf8=row[10],
        last_error=row[11],
        delay_warned=row[12],
        submitted_by=row[13],
        requiretls=row[14],
        tls_optional=tls_optional_in(row[15]),
        recipients=tuple(
            QueueRecipient(
                address=r[1],
                orcpt=r[2],
                notify=tuple(filter(None, r[3].split(","))),
                state=r[4],
                last_reply=r[5],
                phase=r[6],
                code=r[7],
                enhanced=r[8],
                remote_mta=r[9],
                reason=r[10],
                status=r[11],
                reported=r[12],
                updated_at=r[13],
            )
            for r in recipients
        ),
    )


async def _drop_entry(conn: AsyncConnection[Any], queue_id: str) -> bool:
    """Remove the entry (its recipients and history go with it) and its content when nothing
    else refers to it; one transaction, so no row is left naming missing content."""
    cur = await conn.execute("DELETE FROM queue WHERE id = %s RETURNING blob_id", (queue_id,))
    row = await cur.fetchone()
    if row is None:
        return False
    await conn.execute(
        "DELETE FROM blobs b WHERE b.id = %s"
        " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"
        " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = b.id)",
        (row[0],),
    )
    return True


async def _retire(conn: AsyncConnection[Any], queue_id: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM queue_recipients WHERE queue_id = %s"
        " AND (state = 'pending' OR NOT reported) LIMIT 1",
        (queue_id,),
    )
    if await cur.fetchone() is not None:
        return False
    await _drop_entry(conn, queue_id)
    return True


async def _mark_reported(conn: AsyncConnection[Any], queue_id: str, addresses: list[str]) -> None:
    await conn.execute(
        "UPDATE queue_recipients SET reported = true WHERE queue_id = %s"
        " AND address = ANY(%s) AND state <> 'pending'",
        (queue_id, addresses),
    )


class PgQueue:
    def __init__(self, db: Database, node: str, lease: float) -> None:
        self._db = db
        self.node = node
        self.lease = lease
        self._holding: set[str] = set()  # entries whose lease this node renews

    # reading

    async def entries(self) -> list[QueueEntry]:
        async def every(conn: AsyncConnection[Any]) -> list[QueueEntry]:
            rows = await (
                await conn.execute(
                    f'SELECT {_ENTRY_COLUMNS} FROM queue ORDER BY received_at, id COLLATE "C"'
                )
            ).fetchall()
            recipients: dict[str, list[Any]] = {}
            cur = await conn.execute(
                f'SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY address COLLATE "C"'
            )
            for r in await cur.fetchall():
                recipients.setdefault(r[0], []).append(r)
            return [_entry(row, recipients.get(row[0], [])) for row in rows]

        return await self._db.read(every)

    async def get(self, queue_id: str) -> QueueEntry | None:
        async def one(conn: AsyncConnection[Any]) -> QueueEntry | None:
            cur = await conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM queue WHERE id = %s", (queue_id,)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            cur = await conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = %s"
                ' ORDER BY address COLLATE "C"',
                (queue_id,),
            )
            return _entry(row, await cur.fetchall())

        return await self._db.read(one)

    async def due(self) -> list[Due]:
        async def due(conn: AsyncConnection[Any]) -> list[Due]:
            cur = await conn.execute(
                "SELECT id, CASE WHEN lease_owner IS NOT NULL AND lease_owner <> %s"
                " AND lease_until > clock_timestamp()"
                " THEN greatest(next_attempt, extract(epoch FROM lease_until)::double precision)"
                " ELSE next_attempt END, received_at, delay_warned FROM queue WHERE NOT held",
                (self.node,),
            )
            return [Due(*row) for row in await cur.fetchall()]

        return await self._db.read(due)

    async def history(self, queue_id: str) -> list[AttemptRecord]:
        async def history(conn: AsyncConnection[Any]) -> list[AttemptRecord]:
            cur = await conn.execute(
                "SELECT started_at, recipient, domain, state, phase, code, enhanced, text,"
                " remote_mta, reason FROM queue_attempts WHERE queue_id = %s"
                " ORDER BY started_at, id",
                (queue_id,),
            )
            return [AttemptRecord(*row) for row in await cur.fetchall()]

        return await self._db.read(history)

    # delivery

    async def begin_attempt(self, queue_id: str, started_at: float, next_attempt: float) -> int:
        async def claim(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "SELECT 1 FROM queue WHERE id = %s AND (lease_owner IS NULL OR lease_owner = %s"
                " OR lease_until <= clock_timestamp()) FOR UPDATE SKIP LOCKED",
                (queue_id, self.node),
            )
            if await cur.fetchone() is None:
                return 0  # gone, or another node holds it (or is claiming it right now)
            cur = await conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = %s, lease_owner = %s,"
                " lease_until = clock_timestamp() + make_interval(secs => %s)"
                " WHERE id = %s RETURNING attempts",
                (next_attempt, self.node, self.lease, queue_id),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

        number = await self._db.run_write(claim)
        if number:
            self._holding.add(queue_id)
        return number

    async def renew_leases(self) -> int:
        """Push back the expiry of every lease this node holds; how many it still holds."""
        holding = list(self._holding)
        if not holding:
            return 0

        async def renew(conn: AsyncConnection[Any]) -> list[str]:
            cur = await conn.execute(
                "UPDATE queue SET lease_until = clock_timestamp() + make_interval(secs => %s)"
                " WHERE id = ANY(%s) AND lease_owner = %s RETURNING id",
                (self.lease, holding, self.node),
            )
            return [row[0] for row in await cur.fetchall()]

        kept = set(await self._db.run_write(renew))
        for queue_id in holding:
            if queue_id not in kept:
                # Gone, or (after this node could not renew in time) another node's now.
                self._holding.discard(queue_id)
        return len(kept)

    async def _lease_keeper(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew_leases()
            except OSError as exc:
                log.warning("could not renew queue leases: %s", exc)

    def _let_go(self, queue_id: str) -> None:
        self._holding.discard(queue_id)

    async def record_results(
        self,
        queue_id: str,
        results: Sequence[RecipientResult],
        when: float,
        *,
        reported: Sequence[str] = (),
        retire: bool = False,
    ) -> bool:
        async def record(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute("SELECT 1 FROM queue WHERE id = %s FOR UPDATE", (queue_id,))
            if await cur.fetchone() is None:
                return False  # deleted by an administrator while it was being delivered
            async with conn.cursor() as c:
                # A final state is never overwritten: a recipient delivered stays delivered.
                await c.executemany(
                    "UPDATE queue_recipients SET state = %s, last_reply = %s, phase = %s,"
                    " code = %s, enhanced = %s, remote_mta = %s, reason = %s, status = %s,"
                    " updated_at = %s WHERE queue_id = %s AND address = %s AND state = 'pending'",
                    [
                        (
                            *(r.state, r.text, r.phase, r.code, r.enhanced, r.remote_mta),
                            *(r.reason, r.status, when, queue_id, r.address),
                        )
                        for r in results
                    ],
                )
                await c.executemany(
                    "INSERT INTO queue_attempts (queue_id, started_at, recipient, domain, state,"
                    " phase, code, enhanced, text, remote_mta, reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            *(queue_id, when, r.address, r.domain, r.state, r.phase),
                            *(r.code, r.enhanced, r.text, r.remote_mta, r.reason),
                        )
                        for r in results
                    ],
                )
            if reported:
                await _mark_reported(conn, queue_id, list(reported))
            return retire and await _retire(conn, queue_id)

        gone = await self._db.run_write(record)
        if gone:
            self._let_go(queue_id)
        return gone

    async def end_attempt(self, queue_id: str, next_attempt: float, last_error: str) -> None:
        async def end(conn: AsyncConnection[Any]) -> None:
            # Only while this node may still speak for the entry: after its lease ran out
            # another node may have taken it, and that node's plan stands.
            await conn.execute(
                "UPDATE queue SET next_attempt = %s, last_error = %s, lease_owner = NULL,"
                " lease_until = NULL WHERE id = %s AND (lease_owner IS NULL OR lease_owner = %s"
                " OR lease_until <= clock_timestamp())",
                (next_attempt, last_error, queue_id, self.node),
            )

        await self._db.run_write(end)
        self._let_go(queue_id)

    async def mark_reported(
        self, queue_id: str, addresses: Sequence[str], *, retire: bool = False
    ) -> bool:
        async def mark(conn: AsyncConnection[Any]) -> bool:
            if addresses:
                await _mark_reported(conn, queue_id, list(addresses))
            return retire and await _retire(conn, queue_id)

        gone = await self._db.run_write(mark)
        if gone:
            self._let_go(queue_id)
        return gone

    async def mark_delay_warned(self, queue_id: str) -> None:
        async def mark(conn: AsyncConnection[Any]) -> None:
            await conn.execute("UPDATE queue SET delay_warned = true WHERE id = %s", (queue_id,))

        await self._db.run_write(mark)

    async def retire(self, queue_id: str) -> bool:
        gone = await self._db.run_write(lambda conn: _retire(conn, queue_id))
        if gone:
            self._let_go(queue_id)
        return gone

    # administration

    async def hold(self, queue_id: str, held: bool, now: float) -> bool:
        async def hold(conn: AsyncConnection[Any]) -> bool:
            if held:
                cur = await conn.execute("UPDATE queue SET held = true WHERE id = %s", (queue_id,))
                return cur.rowcount > 0
            cur = await conn.execute(
                "UPDATE queue SET held = false, next_attempt = least(next_attempt, %s)"
                " WHERE id = %s RETURNING id, next_attempt",
                (now, queue_id),
            )
            rows = await cur.fetchall()
            await self._announce(conn, rows)
            return bool(rows)

        return await self._db.run_write(hold)

    async def flush(self, queue_id: str | None, domain: str | None, now: float) -> int:
        async def flush(conn: AsyncConnection[Any]) -> int:
            if queue_id is not None:
                cur = await conn.execute(
                    "UPDATE queue SET next_attempt = %s WHERE id = %s RETURNING id, next_attempt",
                    (now, queue_id),
                )
            elif domain is not None:
                suffix = "@" + domain.lower().rstrip(".")
                cur = await conn.execute(
                    "UPDATE queue SET next_attempt = %s WHERE id IN (SELECT queue_id FROM"
                    " queue_recipients WHERE state = 'pending'"
                    " AND right(lower(address), length(%s)) = %s) RETURNING id, next_attempt",
                    (now, suffix, suffix),
                )
            else:
                cur = await conn.execute(
                    "UPDATE queue SET next_attempt = %s RETURNING id, next_attempt", (now,)
                )
            rows = await cur.fetchall()
            await self._announce(conn, rows)
            return len(rows)

        return await self._db.run_write(flush)

    async def _announce(self, conn: AsyncConnection[Any], items: Sequence[Sequence[Any]]) -> None:
        await notify_queued(conn, self.node, [(row[0], row[1]) for row in items])

    async def delete(self, queue_id: str) -> bool:
        gone = await self._db.run_write(lambda conn: _drop_entry(conn, queue_id))
        self._let_go(queue_id)
        return gone

    async def drain(self) -> None:
        await self._db.drain()


async def notify_queued(
    conn: AsyncConnection[Any], node: str, items: Sequence[tuple[str, float]]
) -> None:
    """Tell the other nodes (at this transaction's commit) that these entries are due."""
    for start in range(0, len(items), NOTIFY_BATCH):
        payload = json.dumps({"node": node, "due": list(items[start : start + NOTIFY_BATCH])})
        await conn.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, payload))


# ---------------------------------------------------------------------------- Intake


class PgIntake:
    def __init__(self, db: Database, node: str, hub: ChangeHub) -> None:
        self._db = db
        self._node = node
        self._hub = hub
        self._listener: QueuedListener | None = None

    async def accept(
        self, content: BlobWriter, message_for: Callable[[SpooledBlob], IncomingMessage]
    ) -> str:
        """The content, its blob row, the mailbox messages and the queue entry in ONE
        transaction: when the commit returns all of it is durable (the database's own flush),
        and before it none of it exists. ``message_for`` runs just before that transaction."""
        if not isinstance(content, PgContentWriter):
            raise TypeError("Intake.accept takes a writer from the same backend's Blobs")
        try:
            message = message_for(content.seal())
        except BaseException:
            content.close()
            raise

        delivered: list[tuple[str, Change]] = []

        async def store(conn: AsyncConnection[Any]) -> None:
            await insert_content(conn, content, message.blob, published=True)
            await self._insert(conn, message, delivered)

        try:
            await self._db.run_write(store)
        except psycopg.Error as exc:
            raise storage_error(exc) from exc
        finally:
            content.close()
        for user, change in delivered:
            self._hub.publish(user, [change])
        self._announce(message)
        return message.blob.blob_id

    async def _insert(
        self,
        conn: AsyncConnection[Any],
        message: IncomingMessage,
        delivered: list[tuple[str, Change]],
    ) -> None:
        blob = message.blob
        now = message.received_at or time.time()
        delivered.clear()
        for mailbox in sorted({m.lower() for m in message.mailboxes}):  # sorted: no deadlock
            modseq, uid = await deliver_to_inbox(
                conn, mailbox, blob, now, message.sender, message.subject
            )
            change = Change(ChangeKind.EXISTS, INBOX, modseq, (uid,))
            delivered.append((mailbox, change))
            for note in change_notes(self._node, mailbox, [change]):
                await conn.execute("SELECT pg_notify(%s, %s)", (MAIL_CHANNEL, note))
        if not message.remote:
            return
        await conn.execute(
            "INSERT INTO queue (id, blob_id, sender, size, received_at, next_attempt, envid,"
            " ret, smtputf8, extra, submitted_by, requiretls)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                *(blob.blob_id, blob.blob_id, message.sender, blob.size, now, now),
                *(message.envid, message.ret, message.smtputf8, queue_extra(message)),
                *(message.submitted_by, message.requiretls),
            ),
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO queue_recipients (queue_id, address, orcpt, notify, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (blob.blob_id, r.address, r.orcpt, ",".join(r.notify), now)
                    for r in message.remote
                ],
            )
        await notify_queued(conn, self._node, [(blob.blob_id, now)])

    def _announce(self, message: IncomingMessage) -> None:
        if message.remote:
            self.tell([(message.blob.blob_id, message.received_at or time.time())])

    def tell(self, items: list[tuple[str, float]]) -> None:
        listener = self._listener
        if listener is None or not items:
            return
        try:
            listener(items)
        except Exception:  # a listener's bug must not fail a stored message
            log.exception("queue listener failed")

    def on_queued(self, listener: QueuedListener | None) -> None:
        self._listener = listener


# ---------------------------------------------------------------------------- Storage


class PostgresBackend:
    """The ``Storage`` of one node on a shared PostgreSQL database."""

    def __init__(self, db: Database, url: str, domains: tuple[str, ...], node: str, lease: float):
        self.db = db
        self.url = url
        self.node = node
        self.directory = PgDirectory(db, domains)
        self.queue = PgQueue(db, node, lease)
        self.blobs = PgBlobs(db)
        self.hub = ChangeHub()
        self.mailboxes = PgMailboxes(db, self.hub, node)
        self.intake = PgIntake(db, node, self.hub)
        self._background: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._connect_args: dict[str, Any] = {}  # the password, when it is not in the URL

    @classmethod
    async def open(
        cls,
        url: str,
        domains: tuple[str, ...],
        *,
        node: str | None = None,
        lease: float = 300.0,
        pool_size: int = 16,
        timeout: float = 30.0,
        migrate: bool = True,
        listen: bool = True,
        password: str | None = None,
    ) -> PostgresBackend:
        """Connect (waiting up to ``timeout`` for the database), migrate the schema if
        ``migrate`` (else refuse a database that is not at this program's version), and start
        the lease keeper and the LISTEN task."""
        if migrate:
            await migrate_database(url, timeout, password=password)
        extra: dict[str, Any] = {} if password is None else {"password": password}
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, **extra},
            open=False,
            timeout=timeout,
            name="todoku",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise storage_error(exc) from exc
        db = Database(pool, timeout)
        try:
            found = await db.read(schema.version)
        except BaseException:
            await pool.close()
            raise
        if found != schema.SCHEMA_VERSION:
            await pool.close()
            raise schema.NewerSchema(
                f"the database is at schema version {found}, this todoku needs"
                f" {schema.SCHEMA_VERSION}: run todoku store migrate"
            )
        backend = cls(db, url, domains, node or default_node_name(), lease)
        backend._connect_args = extra
        backend._background.append(db.loop.create_task(backend.queue._lease_keeper()))
        if listen:
            backend._background.append(db.loop.create_task(backend._listen()))
            try:  # from here on, no other node's notification is missed
                async with asyncio.timeout(timeout):
                    await backend._listening.wait()
            except TimeoutError:
                await backend.close()
                raise storage_error(TimeoutError("LISTEN did not start in time")) from None
        return backend

    async def _listen(self) -> None:
        """Hear other nodes' new and flushed entries (``NOTIFY todoku_queue``); reconnect with
        a growing pause while the database is away, then rescan nothing: a runner that missed
        notifications while the database was down still has its own timetable."""
        pause = 0.5
        while True:
            try:
                conn = await AsyncConnection.connect(
                    self.url, autocommit=True, **self._connect_args
                )
                async with conn:
                    await conn.execute(f"LISTEN {QUEUE_CHANNEL}")
                    await conn.execute(f"LISTEN {MAIL_CHANNEL}")
                    self._listening.set()
                    pause = 0.5
                    async for note in conn.notifies():
                        if note.channel == MAIL_CHANNEL:
                            self._heard_mail(note.payload)
                        else:
                            self._heard(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)

    def _heard(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            if note.get("node") == self.node:
                return  # our own: the listener heard of it at the commit
            items = [(str(i), float(t)) for i, t in note["due"]]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable queue notification %r", payload[:200])
            return
        self.intake.tell(items)

    def _heard_mail(self, payload: str) -> None:
        try:
            self.mailboxes.heard(payload)
        except ValueError as exc:
            log.warning("%s", exc)

    async def sweep(self, older_than: float = 3600.0) -> int:
        """Content finished but never published (a node died between the two) for longer than
        ``older_than`` seconds: removed. Content being written right now by another node is
        younger than that."""

        async def sweep(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "DELETE FROM blobs WHERE NOT published AND created_at < %s",
                (time.time() - older_than,),
            )
            return cur.rowcount

        return await self.db.run_write(sweep)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.db.drain()
        await self.db.pool.close()


async def migrate_database(
    url: str, timeout: float = 30.0, *, password: str | None = None
) -> list[schema.Migration]:
    """``todoku store migrate`` and the start-up of a node: bring the schema up to date, one
    node at a time (``schema.migrate``)."""
    extra: dict[str, Any] = {} if password is None else {"password": password}
    try:
        conn = await AsyncConnection.connect(
            url, autocommit=True, connect_timeout=max(1, int(timeout)), **extra
        )
    except _UNAVAILABLE as exc:
        raise storage_error(exc) from exc
    async with conn:
        return await schema.migrate(conn)


def _is_storage(backend: PostgresBackend) -> Storage:
    return backend  # mypy checks here that the backend implements every interface
