"""The embedded default backend: SQLite (WAL, synchronous=FULL) for the index and for small
content (``contents``, up to ``blobs.INLINE_LIMIT``), files for larger content.

Writes that answer a client (``commit``) go through one writer thread that gathers every message
waiting at that moment into one transaction: concurrent SMTP sessions share the directory fsyncs
and the WAL fsync (group commit), while each still gets its 250 only after its own data is durable.
Small content is written inside that transaction, so a group of small messages costs one fsync.
Other writes (CLI, POP3 deletions) use short transactions of their own; SQLite serialises them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from todoku.store import migrations
from todoku.store import sqlite_mailboxes as mail
from todoku.store.api import (
    Alias,
    IncomingMessage,
    MaildropRow,
    QueueEntry,
    QueueRecipient,
    RecipientResult,
    SpooledBlob,
    StorageFull,
    StoredMessage,
    User,
    queue_extra,
    tls_optional_in,
)
from todoku.store.blobs import (
    STEP_DB_COMMIT,
    FileBlobStore,
    FileBlobWriter,
    HeldBlob,
    StorageFaults,
)
from todoku.store.datadir import (
    after_upgrade,
    before_upgrade,
    create_private_file,
    make_private_dir,
    schema_version,
)
from todoku.store.mailboxes import INBOX, ChangeHub

# The index as it was at schema version 0; later additions are store.migrations.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    address TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (source, target)
);
CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mailboxes (
    address TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    next_uid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    mailbox TEXT NOT NULL REFERENCES mailboxes(address),
    uid INTEGER NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    deleted_at REAL,
    UNIQUE (mailbox, uid)
);
CREATE INDEX IF NOT EXISTS messages_by_mailbox ON messages (mailbox, deleted_at, uid);
CREATE INDEX IF NOT EXISTS messages_by_blob ON messages (blob_id);
CREATE INDEX IF NOT EXISTS messages_deleted ON messages (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    sender TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    envid TEXT,
    ret TEXT,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (next_attempt);
CREATE INDEX IF NOT EXISTS queue_by_blob ON queue (blob_id);
CREATE TABLE IF NOT EXISTS queue_recipients (
    queue_id TEXT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    orcpt TEXT,
    notify TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'pending',
    last_reply TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (queue_id, address)
);
"""

_MESSAGE_COLUMNS = (
    "m.id, m.mailbox, m.uid, f.uidvalidity, m.blob_id, m.size, m.received_at, m.sender,"
    " m.subject, m.deleted_at, f.name"
)
_GROUP_LIMIT = 256
# Each message's fsync waits for a journal commit (about 8 ms on the benchmark machine's ext4),
# and the file system folds concurrent fsyncs into one commit: with a thread per waiting session
# they overlap (measured: 6 threads 1.8 ms per file, 20 threads 0.45 ms). The default executor
# has only cpu_count + 4 threads, which queued the sessions behind each other (bench/, issue 7).
FSYNC_THREADS = 64
_FSYNC_POOL = ThreadPoolExecutor(max_workers=FSYNC_THREADS, thread_name_prefix="todoku-fsync")


def _connect(path: Path) -> sqlite3.Connection:
    # Created 0600 before SQLite would create it 0644 less the umask: it holds password hashes,
    # and SQLite gives the -wal and -shm files the database file's mode (issue 12).
    create_private_file(path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # the WAL is fsynced at every commit: 250 = durable
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _is_full(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


class _Pending:
    __slots__ = ("future", "loop", "message")

    def __init__(
        self, message: IncomingMessage, loop: asyncio.AbstractEventLoop, future: asyncio.Future[str]
    ) -> None:
        self.message = message
        self.loop = loop
        self.future = future


class SqliteStore:
    """SQLite + files. Thread-safe: each thread reads through its own connection."""

    def __init__(self, data_dir: Path, faults: StorageFaults | None = None) -> None:
        self.data_dir = data_dir
        make_private_dir(data_dir)
        self.blobs = FileBlobStore(data_dir, faults)
        self.db_path = data_dir / "todoku.db"
        self._local = threading.local()
        self._all_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        conn = self._conn()
        # Schema version (store.datadir): a newer index is refused (NewerSchema), an older one
        # copied before the migrations below; upgraded_from is the version found, if migrated.
        self.upgraded_from = before_upgrade(conn, self.db_path)
        if schema_version(conn) == 0:
            # A new index starts at version 0 and runs every migration. Only then: later
            # versions dropped tables of version 0 (migration 3: mailboxes).
            conn.executescript(SCHEMA)
        migrations.migrate(conn, schema_version(conn))
        after_upgrade(conn)
        # Called (in the writer thread) with [(queue_id, next_attempt)] after each group commit
        # that queued mail for other domains: the outbound runner's wake-up.
        self.on_queued: Callable[[list[tuple[str, float]]], None] | None = None
        self._pending: queue.Queue[_Pending | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        # The in-process change feed of the mail (store.mailboxes): deliveries, POP3 deletions
        # and every Mailboxes write announce their changes here after the commit.
        self.changes = ChangeHub()

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.db_path)
            self._local.conn = conn
            with self._connections_lock:
                self._all_connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        if getattr(self._local, "after_commit", None) is not None:
            # Inside run_batch: the batch's transaction (and its savepoint) already holds this.
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            # A failed COMMIT (disk full) can leave the transaction open; without this every
            # later write on this connection would fail even after space comes back.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def run_batch(
        self,
        calls: list[Callable[[], Any]],
        after_commit: Callable[[list[Callable[[], None]]], None] | None = None,
    ) -> list[Any]:
        """Several store operations in ONE transaction: one fsync for all (the queue runner's
        state updates, issue 7). Each call runs in its own savepoint: one that raises is undone
        alone, and its exception is returned in its place. Blob files are deleted only after
        the commit, so a crash never leaves a row pointing at a deleted file."""
        results: list[Any] = []
        cleanup: list[Callable[[], None]] = []
        with self._write() as conn:
            self._local.after_commit = cleanup
            try:
                for call in calls:
                    conn.execute("SAVEPOINT batch_call")
                    try:
                        results.append(call())
                    except Exception as exc:  # noqa: BLE001 - that call alone is undone; the caller gets it
                        conn.execute("ROLLBACK TO batch_call")
                        results.append(exc)
                    conn.execute("RELEASE batch_call")
            finally:
                self._local.after_commit = None
        if after_commit is not None:
            # The caller runs them elsewhere: an unlink waits on the file system's journal,
            # and the next group transaction should not wait behind it (issue 7).
            after_commit(cleanup)
        else:
            for action in cleanup:
                action()
        return results

    def _delete_blobs_after_commit(self, blob_ids: list[str]) -> None:
        after_commit = getattr(self._local, "after_commit", None)
        for blob_id in blob_ids:
            if after_commit is not None:
                after_commit.append(lambda blob_id=blob_id: self.blobs.delete(blob_id))
            else:
                self.blobs.delete(blob_id)

    def close(self) -> None:
        if self._writer is not None:
            self._pending.put(None)
            self._writer.join(timeout=30)
            self._writer = None
        with self._connections_lock:
            for conn in self._all_connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all_connections.clear()
        self._local = threading.local()

    def announce(self, changes: mail.Changes) -> None:
        """Tell the change feed's waiters (after the commit that made the changes durable)."""
        by_user: dict[str, list[Any]] = {}
        for user, change in changes:
            by_user.setdefault(user, []).append(change)
        for user, found in by_user.items():
            self.changes.publish(user, found)

    def mailboxes(self) -> mail.SqliteMailboxes:
        """The ``Mailboxes`` interface (IMAP's data model) over this store."""
        return mail.SqliteMailboxes(self)

    # ------------------------------------------------------------------ users and aliases

    def add_user(self, address: str, password_hash: str, admin: bool = False) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO users (address, password_hash, created_at, admin) VALUES (?, ?, ?, ?)",
                (address.lower(), password_hash, time.time(), int(admin)),
            )

    def set_admin(self, address: str, admin: bool) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET admin = ? WHERE address = ?", (int(admin), address.lower())
            )
            return cur.rowcount > 0

    def set_password(self, address: str, password_hash: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE address = ?",
                (password_hash, address.lower()),
            )
            return cur.rowcount > 0

    def delete_user(self, address: str) -> bool:
        with self._write() as conn:
            return (
                conn.execute("DELETE FROM users WHERE address = ?", (address.lower(),)).rowcount > 0
            )

    def get_user(self, address: str) -> User | None:
        row = (
            self._conn()
            .execute(
                "SELECT address, password_hash, created_at, admin FROM users WHERE address = ?",
                (address.lower(),),
            )
            .fetchone()
        )
        return User(row[0], row[1], row[2], bool(row[3])) if row else None

    def list_users(self) -> list[User]:
        rows = (
            self._conn()
            .execute("SELECT address, password_hash, created_at, admin FROM users ORDER BY address")
            .fetchall()
        )
        return [User(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def add_alias(self, source: str, target: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO aliases (source, target) VALUES (?, ?)",
                (source.lower(), target.lower()),
            )

    def delete_alias(self, source: str, target: str | None = None) -> int:
        with self._write() as conn:
            if target is None:
                return conn.execute(
                    "DELETE FROM aliases WHERE source = ?", (source.lower(),)
                ).rowcount
            return conn.execute(
                "DELETE FROM aliases WHERE source = ? AND target = ?",
                (source.lower(), target.lower()),
            ).rowcount

    def list_aliases(self) -> list[Alias]:
        rows = self._conn().execute("SELECT source, target FROM aliases ORDER BY source, target")
        return [Alias(*row) for row in rows.fetchall()]

    def alias_targets(self, source: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT target FROM aliases WHERE source = ? ORDER BY target", (source.lower(),)
        )
        return [row[0] for row in rows.fetchall()]

    # ------------------------------------------------------------------ content and ingest

    def new_blob(self) -> FileBlobWriter:
        return self.blobs.new_writer()

    def open_blob(self, blob_id: str) -> BinaryIO:
        """Published content of either kind: a ``contents`` row, else the file."""
        row = self._conn().execute("SELECT data FROM contents WHERE id = ?", (blob_id,)).fetchone()
        if row is not None:
            return io.BytesIO(row[0])
        return self.blobs.open(blob_id)

    def publish(self, blobs: list[SpooledBlob]) -> None:
        """``Blobs.publish``: files renamed into place, held content into ``contents`` (one
        transaction); durable when it returns, and on an error none of ``blobs`` is published."""
        self.blobs.publish(blobs)
        held = [b for b in blobs if isinstance(b, HeldBlob)]
        if not held:
            return
        try:
            with self._write() as conn:
                _insert_contents(conn, held, time.time())
        except (sqlite3.Error, OSError) as exc:
            self.blobs.unpublish(blobs)
            if isinstance(exc, OSError) or _is_full(exc):
                raise StorageFull(28, "Insufficient system storage") from exc
            raise OSError(5, f"index write failed: {exc}") from exc

    async def commit(self, message: IncomingMessage) -> str:
        """Make the message durable in its mailboxes and queue; returns its queue id."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._start_writer()
        self._pending.put(_Pending(message, loop, future))
        return await future

    async def commit_spooled(
        self, writer: FileBlobWriter, message_for: Callable[[SpooledBlob], IncomingMessage]
    ) -> str:
        """``writer.finish()`` (the file's fsync), then ``commit``: the SMTP accept path.

        The fsync runs in a pool thread, which then queues the message for the group commit
        itself: the event loop wakes once per group, when the group is durable, instead of once
        more per message between the two steps (issue 7 profile: the executor's future chaining
        and wake-ups were about 5% of the loop's time)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._start_writer()
        if isinstance(writer, FileBlobWriter) and writer.inline:
            # Small content: finish() only hashes what is held, and the group's transaction
            # writes it; straight to the writer thread, no hop through the fsync pool.
            self._finish_then_queue(writer, message_for, loop, future)
        else:
            _FSYNC_POOL.submit(self._finish_then_queue, writer, message_for, loop, future)
        return await future

    def _finish_then_queue(
        self,
        writer: FileBlobWriter,
        message_for: Callable[[SpooledBlob], IncomingMessage],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[str],
    ) -> None:
        try:
            message = message_for(writer.finish())
        except Exception as exc:  # noqa: BLE001 - the waiting session answers 452/451 from it
            loop.call_soon_threadsafe(_set_exception, future, exc)
            return
        self._pending.put(_Pending(message, loop, future))

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._writer_loop, name="todoku-commit", daemon=True
            )
            self._writer.start()

    def file_sync(
        self,
        blob: SpooledBlob,
        mailbox: str,
        folder: str,
        received_at: float,
        sender: str,
        subject: str,
        flags: frozenset[str] = frozenset(),
    ) -> None:
        """Publish spooled content and file it into a folder with flags (``todoku import``):
        the file first, then the rows, as ``commit`` does (a crash between leaves an orphan
        file that fsck re-indexes, never a row without its file)."""
        try:
            self.blobs.publish([blob])
        except OSError as exc:
            raise StorageFull(exc.errno, "Insufficient system storage") from exc
        try:
            with self._write() as conn:
                if isinstance(blob, HeldBlob):
                    _insert_contents(conn, [blob], received_at)
                conn.execute(
                    "INSERT INTO blobs (id, size, sha256, created_at) VALUES (?, ?, ?, ?)",
                    (blob.blob_id, blob.size, blob.sha256, received_at),
                )
                change = mail.file_message(
                    conn,
                    mailbox.lower(),
                    folder,
                    blob.blob_id,
                    blob.size,
                    received_at,
                    sender,
                    subject,
                    flags,
                )
        except BaseException:
            self.blobs.unpublish([blob])
            raise
        self.announce([(mailbox.lower(), change)])

    def commit_sync(self, message: IncomingMessage) -> str:
        """The same as ``commit`` for callers without an event loop (``todoku sendmail``)."""
        self._commit_group([message])
        self._announce_queued([message])
        return message.blob.blob_id

    def _announce_queued(self, messages: list[IncomingMessage]) -> None:
        listener = self.on_queued
        queued = [(m.blob.blob_id, m.received_at or time.time()) for m in messages if m.remote]
        if listener is not None and queued:
            try:
                listener(queued)
            except Exception:  # a listener's bug must not fail a stored message
                logging.getLogger("todoku.store").exception("queue listener failed")

    def _writer_loop(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < _GROUP_LIMIT:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            try:
                self._commit_group([p.message for p in group])
            except BaseException as exc:  # every waiting session must hear of it  # noqa: BLE001
                error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
                _wake_group(group, error)
            else:
                _wake_group(group, None)
                self._announce_queued([p.message for p in group])
            if stop:
                return

    def _commit_group(self, messages: list[IncomingMessage]) -> None:
        try:
            self.blobs.publish([m.blob for m in messages])
        except OSError as exc:
            raise StorageFull(exc.errno, "Insufficient system storage") from exc
        changes: mail.Changes = []
        try:
            with self._write() as conn:
                for message in messages:
                    changes += self._insert(conn, message)
                self.blobs.faults.before(STEP_DB_COMMIT, self.db_path)
        except (sqlite3.Error, OSError) as exc:
            self.blobs.unpublish([m.blob for m in messages])
            if isinstance(exc, OSError) or _is_full(exc):
                raise StorageFull(28, "Insufficient system storage") from exc
            # Any other index failure: the adapters answer 451 for an OSError, never a traceback.
            raise OSError(5, f"index write failed: {exc}") from exc
        self.announce(changes)

    def _insert(self, conn: sqlite3.Connection, message: IncomingMessage) -> mail.Changes:
        blob = message.blob
        now = message.received_at or time.time()
        if isinstance(blob, HeldBlob):
            _insert_contents(conn, [blob], now)
        conn.execute(
            "INSERT INTO blobs (id, size, sha256, created_at) VALUES (?, ?, ?, ?)",
            (blob.blob_id, blob.size, blob.sha256, now),
        )
        changes: mail.Changes = []
        for mailbox in dict.fromkeys(m.lower() for m in message.mailboxes):
            # Into INBOX; quarantined mail (DMARC p=quarantine) into the user's Junk folder.
            change = mail.deliver(
                conn,
                mailbox,
                message.junk,
                blob.blob_id,
                blob.size,
                now,
                message.sender,
                message.subject,
            )
            changes.append((mailbox, change))
        if message.remote:
            conn.execute(
                "INSERT INTO queue (id, blob_id, sender, size, received_at, next_attempt, envid, ret,"
                " smtputf8, extra, submitted_by, requiretls)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    blob.blob_id,
                    blob.blob_id,
                    message.sender,
                    blob.size,
                    now,
                    now,
                    message.envid,
                    message.ret,
                    int(message.smtputf8),
                    queue_extra(message),
                    message.submitted_by,
                    int(message.requiretls),
                ),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO queue_recipients"
                " (queue_id, address, orcpt, notify, updated_at) VALUES (?, ?, ?, ?, ?)",
                [
                    (blob.blob_id, r.address, r.orcpt, ",".join(r.notify), now)
                    for r in message.remote
                ],
            )
        return changes

    # ------------------------------------------------------------------ mailboxes

    def _messages(self, where: str, args: tuple[Any, ...]) -> list[StoredMessage]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN folders f ON f.id = m.folder_id"
                f" WHERE {where} ORDER BY f.name = 'INBOX' DESC, f.name, m.uid",
                args,
            )
            .fetchall()
        )
        return [StoredMessage(*row) for row in rows]

    def list_messages(self, mailbox: str) -> list[StoredMessage]:
        """Live mail of every folder of ``mailbox``: INBOX first, in UID order."""
        return self._messages("m.mailbox = ? AND m.deleted_at IS NULL", (mailbox.lower(),))

    def list_maildrop(self, mailbox: str) -> list[MaildropRow]:
        """POP3's maildrop: INBOX, with UIDLs ``<uidvalidity>.<uid>`` as before folders."""
        rows: list[MaildropRow] = (
            self._conn()
            .execute(
                "SELECT m.id, m.size, f.uidvalidity || '.' || m.uid, m.blob_id"
                " FROM messages m JOIN folders f ON f.id = m.folder_id"
                " WHERE f.owner = ? AND f.name = ? AND f.deleted_at IS NULL"
                " AND m.deleted_at IS NULL ORDER BY m.uid",
                (mailbox.lower(), INBOX),
            )
            .fetchall()
        )
        return rows

    def list_deleted(self, mailbox: str) -> list[StoredMessage]:
        return self._messages("m.mailbox = ? AND m.deleted_at IS NOT NULL", (mailbox.lower(),))

    def mark_deleted(self, mailbox: str, message_ids: list[int], when: float) -> int:
        """POP3's deletions: a recoverable expunge (IMAP sessions see it at once)."""
        with self._write() as conn:
            count, changes = mail.remove_by_id(conn, mailbox.lower(), message_ids, when)
        self.announce(changes)
        return count

    def undelete(self, mailbox: str, message_ids: list[int] | None, since: float | None) -> int:
        """Bring deleted messages back into their folders under new UIDs, so POP3 and IMAP
        clients fetch them again."""
        with self._write() as conn:
            count, changes = mail.undelete_rows(conn, mailbox.lower(), message_ids, since)
        self.announce(changes)
        return count

    def purge_deleted(self, older_than: float) -> int:
        """Forget messages deleted before ``older_than`` and remove content nothing refers to."""
        with self._write() as conn:
            blob_ids = mail.purge_rows(conn, older_than)
            unused = self._unreferenced(conn, set(blob_ids))
            for blob_id in unused:
                conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        # Files go after the commit: a crash in between leaves an orphan file, never a dangling row.
        for blob_id in unused:
            self.blobs.delete(blob_id)
        return len(blob_ids)

    @staticmethod
    def _unreferenced(conn: sqlite3.Connection, blob_ids: set[str]) -> list[str]:
        unused = []
        for blob_id in sorted(blob_ids):
            in_mailbox = conn.execute(
                "SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", (blob_id,)
            ).fetchone()
            in_queue = conn.execute(
                "SELECT 1 FROM queue WHERE blob_id = ? LIMIT 1", (blob_id,)
            ).fetchone()
            if not in_mailbox and not in_queue:
                unused.append(blob_id)
        return unused

    # ------------------------------------------------------------------ queue

    _QUEUE_ENTRY_COLUMNS = (
        "id, blob_id, sender, size, received_at, next_attempt, attempts, held, envid, ret,"
        " smtputf8, last_error, delay_warned, submitted_by, requiretls, extra"
    )

    def _queue_entry(self, conn: sqlite3.Connection, row: Any) -> QueueEntry:
        recipients = tuple(
            QueueRecipient(
                address=r[0],
                orcpt=r[1],
                notify=tuple(filter(None, r[2].split(","))),
                state=r[3],
                last_reply=r[4],
                phase=r[5],
                code=r[6],
                enhanced=r[7],
                remote_mta=r[8],
                reason=r[9],
                status=r[10],
                reported=bool(r[11]),
                updated_at=r[12],
            )
            for r in conn.execute(
                "SELECT address, orcpt, notify, state, last_reply, phase, code, enhanced,"
                " remote_mta, reason, status, reported, updated_at FROM queue_recipients"
                " WHERE queue_id = ? ORDER BY address",
                (row[0],),
            ).fetchall()
        )
        return QueueEntry(
            id=row[0],
            blob_id=row[1],
            sender=row[2],
            size=row[3],
            received_at=row[4],
            next_attempt=row[5],
            attempts=row[6],
            held=bool(row[7]),
            envid=row[8],
            ret=row[9],
            smtputf8=bool(row[10]),
            last_error=row[11],
            recipients=recipients,
            delay_warned=bool(row[12]),
            submitted_by=row[13],
            requiretls=bool(row[14]),
            tls_optional=tls_optional_in(row[15]),
        )

    def list_queue(self) -> list[QueueEntry]:
        conn = self._conn()
        rows = conn.execute(
            f"SELECT {self._QUEUE_ENTRY_COLUMNS} FROM queue ORDER BY received_at, id"
        ).fetchall()
        return [self._queue_entry(conn, row) for row in rows]

    def get_queue_entry(self, queue_id: str) -> QueueEntry | None:
        conn = self._conn()
        row = conn.execute(
            f"SELECT {self._QUEUE_ENTRY_COLUMNS} FROM queue WHERE id = ?", (queue_id,)
        ).fetchone()
        return self._queue_entry(conn, row) if row else None

    def queue_schedule(self) -> list[tuple[str, float, float, bool]]:
        rows = (
            self._conn()
            .execute("SELECT id, next_attempt, received_at, delay_warned FROM queue WHERE held = 0")
            .fetchall()
        )
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def begin_attempt(self, queue_id: str, started_at: float, next_attempt: float) -> int:
        with self._write() as conn:
            row = conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = ? WHERE id = ?"
                " RETURNING attempts",
                (next_attempt, queue_id),
            ).fetchone()
        return int(row[0]) if row else 0

    def record_results(self, queue_id: str, results: list[RecipientResult], when: float) -> None:
        if not results:
            return
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM queue WHERE id = ?", (queue_id,)).fetchone() is None:
                return  # deleted by an administrator while it was being delivered
            for r in results:
                # A final state is never overwritten: a recipient delivered stays delivered.
                conn.execute(
                    "UPDATE queue_recipients SET state = ?, last_reply = ?, phase = ?, code = ?,"
                    " enhanced = ?, remote_mta = ?, reason = ?, status = ?, updated_at = ?"
                    " WHERE queue_id = ? AND address = ? AND state = 'pending'",
                    (
                        r.state,
                        r.text,
                        r.phase,
                        r.code,
                        r.enhanced,
                        r.remote_mta,
                        r.reason,
                        r.status,
                        when,
                        queue_id,
                        r.address,
                    ),
                )
                conn.execute(
                    "INSERT INTO queue_attempts (queue_id, started_at, recipient, domain, state,"
                    " phase, code, enhanced, text, remote_mta, reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        queue_id,
                        when,
                        r.address,
                        r.domain,
                        r.state,
                        r.phase,
                        r.code,
                        r.enhanced,
                        r.text,
                        r.remote_mta,
                        r.reason,
                    ),
                )

    def end_attempt(self, queue_id: str, next_attempt: float, last_error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE queue SET next_attempt = ?, last_error = ? WHERE id = ?",
                (next_attempt, last_error, queue_id),
            )

    def queue_history(self, queue_id: str) -> list[dict[str, object]]:
        rows = (
            self._conn()
            .execute(
                "SELECT started_at, recipient, domain, state, phase, code, enhanced, text, remote_mta,"
                " reason FROM queue_attempts WHERE queue_id = ? ORDER BY started_at, rowid",
                (queue_id,),
            )
            .fetchall()
        )
        names = (
            "time",
            "recipient",
            "domain",
            "state",
            "phase",
            "code",
            "enhanced",
            "text",
            "remote_mta",
            "reason",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    def mark_delay_warned(self, queue_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE queue SET delay_warned = 1 WHERE id = ?", (queue_id,))

    def mark_reported(self, queue_id: str, addresses: list[str]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE queue_recipients SET reported = 1 WHERE queue_id = ? AND address = ?"
                " AND state != 'pending'",
                [(queue_id, a) for a in addresses],
            )

    def retire_queue_entry(self, queue_id: str) -> bool:
        with self._write() as conn:
            open_work = conn.execute(
                "SELECT 1 FROM queue_recipients WHERE queue_id = ?"
                " AND (state = 'pending' OR reported = 0) LIMIT 1",
                (queue_id,),
            ).fetchone()
            if open_work:
                return False
            unused = self._drop_queue_row(conn, queue_id)
        self._delete_blobs_after_commit(unused)
        return True

    def _drop_queue_row(self, conn: sqlite3.Connection, queue_id: str) -> list[str]:
        row = conn.execute(
            "DELETE FROM queue WHERE id = ? RETURNING blob_id", (queue_id,)
        ).fetchone()
        if row is None:
            return []
        conn.execute("DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,))
        conn.execute("DELETE FROM queue_attempts WHERE queue_id = ?", (queue_id,))
        unused = self._unreferenced(conn, {row[0]})
        for blob_id in unused:
            conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        return unused

    def set_queue_held(self, queue_id: str, held: bool, now: float) -> bool:
        with self._write() as conn:
            if held:
                cur = conn.execute("UPDATE queue SET held = 1 WHERE id = ?", (queue_id,))
            else:
                cur = conn.execute(
                    "UPDATE queue SET held = 0, next_attempt = MIN(next_attempt, ?) WHERE id = ?",
                    (now, queue_id),
                )
            return cur.rowcount > 0

    def flush_queue(self, queue_id: str | None, domain: str | None, now: float) -> int:
        with self._write() as conn:
            args: tuple[Any, ...]
            if queue_id is not None:
                query, args = "UPDATE queue SET next_attempt = ? WHERE id = ?", (now, queue_id)
            elif domain is not None:
                query = (
                    "UPDATE queue SET next_attempt = ? WHERE id IN (SELECT queue_id FROM"
                    " queue_recipients WHERE state = 'pending' AND lower(address) LIKE ?)"
                )
                args = (now, "%@" + domain.lower().rstrip("."))
            else:
                query, args = "UPDATE queue SET next_attempt = ?", (now,)
            return conn.execute(query, args).rowcount

    def delete_queue_entry(self, queue_id: str) -> bool:
        with self._write() as conn:
            exists = conn.execute("SELECT 1 FROM queue WHERE id = ?", (queue_id,)).fetchone()
            unused = self._drop_queue_row(conn, queue_id)
        self._delete_blobs_after_commit(unused)
        return exists is not None


def _insert_contents(conn: sqlite3.Connection, held: list[HeldBlob], now: float) -> None:
    conn.executemany(
        "INSERT INTO contents (id, data, created_at) VALUES (?, ?, ?)",
        [(b.blob_id, b.data, now) for b in held],
    )


def _wake_group(group: list[_Pending], error: Exception | None) -> None:
    """Answer a whole group with one wake-up per event loop, not one per message: every
    ``call_soon_threadsafe`` writes to the loop's self-pipe and takes the GIL (bench/, issue 7)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for pending in group:
        by_loop.setdefault(pending.loop, []).append(pending)
    for loop, members in by_loop.items():
        loop.call_soon_threadsafe(_resolve_all, members, error)


def _resolve_all(members: list[_Pending], error: Exception | None) -> None:
    for pending in members:
        if error is None:
            _set_result(pending.future, pending.message.blob.blob_id)
        else:
            _set_exception(pending.future, error)


def _set_result(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[str], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
