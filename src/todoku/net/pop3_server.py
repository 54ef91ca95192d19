"""The POP3 adapter: carries bytes between a socket and ``proto.pop3.server``, and makes the decisions.

One ``Pop3Session`` per connection. Invariants:
- A mailbox is open in at most one session of this process (the maildrop lock, RFC 1939 §8): the
  lock is an entry in ``Pop3Context.locks``, taken after a good login and dropped in ``run()``'s
  ``finally``, so it never outlives its session, however the session ends (QUIT, drop, crash of
  the handler, server shutdown).
- Nothing is deleted unless the client's QUIT reached UPDATE: deletion marks live in the core
  only, and the one store write (``mark_deleted``) happens in ``_on_update``.
- Small messages (up to ``READ_AHEAD_MESSAGE_LIMIT``) are read ahead, many per worker-thread hop,
  in the order of the maildrop (``ReadAhead``): a client fetching its mail one RETR after another
  finds the next message already in memory, so a RETR costs no thread hop and no await. A session
  holds at most ``2 * READ_AHEAD_BYTES`` of read-ahead (one batch kept, one being read).
- Larger messages are read in ``CHUNK_SIZE`` pieces in a worker thread, waiting for the socket to
  drain after each, so a session holds at most about one piece of such a message in memory.
- Slow work (password hashing, SQLite, file reads) runs in worker threads; the event loop, which
  every session shares, never waits for a disk or a hash.
- The socket end is an ``asyncio.Protocol`` (``Pop3Link``): bytes go straight to the session, with
  one idle timer per connection and writes that wait only when the client stops reading; no
  ``StreamReader`` and no timer per command (the profile behind issue 7).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, cast

from todoku.config import Config
from todoku.net import tls as tls_util
from todoku.net.idle import Idle
from todoku.net.link import ConnectionLimits, Refusal, SessionLink
from todoku.policy.auth import AuthThrottle, verify_password
from todoku.proto.pop3 import replies
from todoku.proto.pop3.content import EncodedMessage, encode_message
from todoku.proto.pop3.events import (
    NEED_DATA,
    PAUSED,
    Closed,
    LoginRequest,
    MaildropEntry,
    Retrieve,
    StartTLS,
    Update,
)
from todoku.proto.pop3.server import ServerConnection, SessionSettings
from todoku.store.api import Store
from todoku.store.content import Blobs
from todoku.store.directory import Directory

if TYPE_CHECKING:
    from todoku.net.counters import SessionCounters

log = logging.getLogger("todoku.pop3")

BUFFER_LIMIT = 64 * 1024  # unread octets from a client before reading from it pauses
CHUNK_SIZE = 256 * 1024
COMMAND_TIMEOUT = 600.0  # RFC 1939 §3: an autologout timer of at least 10 minutes
SEND_TIMEOUT = 600.0  # a client that stops reading in the middle of RETR is dropped after this
# Read-ahead: messages up to this size are read whole, several per worker-thread hop ...
READ_AHEAD_MESSAGE_LIMIT = 64 * 1024
# ... in batches of at most this many octets (a batch is read when the kept one is half used) ...
READ_AHEAD_BYTES = 256 * 1024
# ... and at most this many messages, so one hop stays short whatever the sizes.
READ_AHEAD_MESSAGES = 128


@dataclass
class Pop3Context:
    """What every POP3 session of this server shares."""

    config: Config
    store: Store  # the maildrops (list, delete, purge)
    directory: Directory  # logins
    blobs: Blobs  # message content
    throttle: AuthThrottle  # the same object SMTP AUTH uses: one budget of failures per address
    tls_context: ssl.SSLContext | None
    stopping: bool = False
    sessions: set[Pop3Session] = field(default_factory=set)
    locks: dict[str, Pop3Session] = field(default_factory=dict)  # mailbox → the session holding it
    next_session: int = 0
    connections: ConnectionLimits | None = None  # [limits] on connections, shared with SMTP
    metrics: SessionCounters | None = None  # counters for /metrics (web.metrics), from app.py

    def session_id(self) -> str:
        self.next_session += 1
        return f"P{self.next_session:05X}"


def settings_for(service: str, config: Config, loopback: bool, tls_ready: bool) -> SessionSettings:
    """``pop3`` offers STLS; ``pop3s`` is TLS from the first byte (RFC 8314 §3.3)."""
    plaintext_ok = config.allow_plaintext_auth_on_loopback and loopback
    if service == "pop3":
        return SessionSettings(
            hostname=config.hostname, tls_available=tls_ready, plaintext_login_allowed=plaintext_ok
        )
    if service == "pop3s":
        return SessionSettings(hostname=config.hostname, tls_active=True)
    raise ValueError(service)


class _Dropped(Exception):
    """The session must end without another word (a read failed in the middle of RETR)."""


# (entry key, the message ready to send, or None: stream it the slow way)
Batch = list[tuple[int, EncodedMessage | None]]


def read_batch(open_blob: Callable[[str], BinaryIO], wanted: Sequence[tuple[int, str]]) -> Batch:
    """Read small message files whole and encode them for RETR, in a worker thread; never raises.

    A file that cannot be read, or is larger than the read-ahead limit, comes back as None: RETR
    then takes the streaming path, which reports the error or sends the file in pieces.
    """
    batch: Batch = []
    for key, blob_id in wanted:
        content: bytes | None
        try:
            with open_blob(blob_id) as handle:
                content = handle.read(READ_AHEAD_MESSAGE_LIMIT + 1)
        except Exception:  # noqa: BLE001 - the streaming path reports it properly
            content = None
        if content is None or len(content) > READ_AHEAD_MESSAGE_LIMIT:
            batch.append((key, None))
        else:
            batch.append((key, encode_message(content)))
    return batch


class ReadAhead:
    """The small messages a client will most likely RETR next, read and encoded before it asks.

    POP3 clients fetch in maildrop order (UIDL, then RETR 1, 2, 3 ...). After a RETR of message n,
    the messages after n are read in one worker-thread hop while the client is busy with n; when
    the client asks for something else, what was read is dropped and reading starts over there.
    Message files never change after delivery, so content read early is the content RETR would
    have read. Memory: at most one kept batch and one batch being read.
    """

    def __init__(self, open_blob: Callable[[str], BinaryIO], blob_ids: dict[int, str]) -> None:
        self._open_blob = open_blob
        self._blob_ids = blob_ids  # entry key → blob id, fixed at login
        self._kept: dict[int, EncodedMessage | None] = {}  # entry key → message (None: stream it)
        self._kept_octets = 0
        self._reading: asyncio.Future[Batch] | None = None
        self._reading_keys: frozenset[int] = frozenset()
        self._next_number = 1  # the first message number no batch has covered yet
        self.batches = 0  # worker-thread hops so far (tests and logs)

    def close(self) -> None:
        self._kept.clear()
        self._reading = None  # a worker still reading just finishes; nobody looks at the result

    async def message(
        self, number: int, maildrop: Sequence[MaildropEntry], deleted: Container[int]
    ) -> EncodedMessage | None:
        """Message ``number`` ready to send if it is small enough to read at once, else None."""
        entry = maildrop[number - 1]
        key = entry.key
        if key not in self._kept and self._reading is not None and key in self._reading_keys:
            self._take(await self._reading)
        if key not in self._kept:
            if entry.size > READ_AHEAD_MESSAGE_LIMIT:
                return None
            # The client is not where we guessed (or this is its first RETR): start over here.
            self._kept.clear()
            self._kept_octets = 0
            self._reading = None
            self._next_number = number
            reading = self._start(maildrop, deleted)
            assert reading is not None  # message `number` itself is small and not deleted
            self._take(await reading)
        message = self._kept.pop(key, None)
        self._kept_octets -= len(message.wire) if message else 0
        return message

    def read_on(self, maildrop: Sequence[MaildropEntry], deleted: Container[int]) -> None:
        """Start the next batch if the kept one is half used. Called after the response is out,
        so waking a worker thread is never on the way between a RETR and its answer."""
        if self._reading is None and self._kept_octets < READ_AHEAD_BYTES // 2:
            self._start(maildrop, deleted)

    def _take(self, batch: Batch) -> None:
        self._reading = None
        for key, message in batch:
            self._kept[key] = message
            self._kept_octets += len(message.wire) if message else 0

    def _start(
        self, maildrop: Sequence[MaildropEntry], deleted: Container[int]
    ) -> asyncio.Future[Batch] | None:
        """Start reading the next batch of small, undeleted messages from ``_next_number`` on."""
        wanted: list[tuple[int, str]] = []
        octets = 0
        number = self._next_number
        while number <= len(maildrop) and len(wanted) < READ_AHEAD_MESSAGES:
            entry = maildrop[number - 1]
            if entry.size <= READ_AHEAD_MESSAGE_LIMIT and number not in deleted:
                if wanted and octets + entry.size > READ_AHEAD_BYTES:
                    break
                wanted.append((entry.key, self._blob_ids[entry.key]))
                octets += entry.size
            number += 1
        self._next_number = number
        if not wanted:
            return None
        self.batches += 1
        loop = asyncio.get_running_loop()
        self._reading = loop.run_in_executor(None, read_batch, self._open_blob, wanted)
        self._reading_keys = frozenset(key for key, _ in wanted)
        return self._reading


class Pop3Session:
    def __init__(
        self,
        ctx: Pop3Context,
        service: str,
        settings: SessionSettings,
        link: Pop3Link,
    ) -> None:
        self.ctx = ctx
        self.service = service
        self.link = link
        self.cid = ctx.session_id()
        peer = cast(tuple[str, int], link.extra("peername") or ("unknown", 0))
        self.client_ip = str(peer[0])
        self.conn = ServerConnection(settings)
        self.mailbox: str | None = None  # set while this session holds the mailbox's lock
        self.blob_ids: dict[int, str] = {}  # maildrop entry key → blob id, fixed at login
        self.read_ahead: ReadAhead | None = None  # set at login
        self.waiting_for_command = False
        self.in_update = False
        self.task: asyncio.Task[None] | None = None

    def _log(self, message: str) -> None:
        log.info("%s[%s]: %s", self.service, self.cid, message)

    async def run(self) -> None:
        self.task = asyncio.current_task()
        self.ctx.sessions.add(self)
        self._log(f"connect from [{self.client_ip}]")
        try:
            await self._loop()
        except (ConnectionError, ssl.SSLError, TimeoutError, _Dropped) as exc:
            self._log(f"lost connection from [{self.client_ip}]: {type(exc).__name__}")
        except Exception:
            log.exception("%s[%s]: session failed", self.service, self.cid)
        finally:
            if self.read_ahead is not None:
                self.read_ahead.close()
            self._release_lock()
            self.ctx.sessions.discard(self)
            self.link.close()
            self._log(f"disconnect from [{self.client_ip}]")

    def _release_lock(self) -> None:
        if self.mailbox is not None and self.ctx.locks.get(self.mailbox) is self:
            del self.ctx.locks[self.mailbox]
        self.mailbox = None

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.link.write(data):
            # Only when the client stopped reading (the transport paused us): waiting costs
            # nothing otherwise, but the timer does, and a small RETR is little more than this.
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.link.writable()

    def stopping(self) -> bool:
        return self.ctx.stopping

    async def _read(self) -> None:
        await self._flush()
        data = await self.link.read()
        if data is Idle.STOPPING:
            self.conn.shutdown(replies.SHUTTING_DOWN)
        elif data is Idle.TIMED_OUT:
            self.conn.shutdown(replies.TIMEOUT)
        else:
            self.conn.receive_data(data)

    async def _loop(self) -> None:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                await self._read()
            elif isinstance(event, LoginRequest):
                await self._on_login(event)
            elif isinstance(event, Retrieve):
                await self._on_retrieve(event)
            elif isinstance(event, Update):
                await self._on_update(event)
            elif isinstance(event, StartTLS):
                await self._start_tls()
            elif isinstance(event, Closed) or event is PAUSED:
                await self._flush()
                return

    async def _start_tls(self) -> None:
        await self._flush()
        assert self.ctx.tls_context is not None
        await self.link.start_tls(self.ctx.tls_context)
        self.conn.tls_started()
        self._log(f"STLS: {tls_util.describe(self.link.extra('ssl_object'))}")  # type: ignore[arg-type]

    # ----------------------------------------------------------------- decisions

    async def _on_login(self, event: LoginRequest) -> None:
        throttle = self.ctx.throttle
        if throttle.locked(self.client_ip):
            self._log(f"login refused: [{self.client_ip}] is locked out after repeated failures")
            self.conn.refuse(replies.LOCKED_OUT, close=True)
            return
        username = event.username.strip().lower()
        loop = asyncio.get_running_loop()
        if event.authzid and event.authzid.lower() != username:
            good = False  # acting as someone else is not something ordinary users may do
        else:
            user = await self.ctx.directory.get_user(username)
            good = await loop.run_in_executor(
                None, verify_password, user.password_hash if user else None, event.password
            )
        if not good:
            delay = throttle.failure(self.client_ip)
            self._log(f"login {event.mechanism} user={username} failed")
            if self.ctx.metrics is not None:
                self.ctx.metrics.auth_failed(self.service)
            if throttle.locked(self.client_ip):
                self.conn.refuse(replies.LOCKED_OUT, close=True)
                return
            if delay:
                await asyncio.sleep(delay)
            self.conn.refuse(replies.LOGIN_FAILED)
            return
        throttle.success(self.client_ip)
        holder = self.ctx.locks.get(username)
        if holder is not None:
            self._log(f"login user={username}: mailbox in use by session {holder.cid}")
            self.conn.refuse(replies.IN_USE)
            return
        self.ctx.locks[username] = self  # no await between the check and here: no race
        self.mailbox = username
        try:
            stored = await loop.run_in_executor(None, self.ctx.store.list_maildrop, username)
        except Exception:
            log.exception("%s[%s]: cannot list mailbox %s", self.service, self.cid, username)
            self._release_lock()
            self.conn.refuse(replies.MAILDROP_UNAVAILABLE)
            return
        self.blob_ids = {key: blob_id for key, _, _, blob_id in stored}
        self.read_ahead = ReadAhead(self.ctx.blobs.open_blocking, self.blob_ids)
        entries = [MaildropEntry(key, size, unique_id) for key, size, unique_id, _ in stored]
        self.conn.accept_login(username, entries)
        octets = sum(entry.size for entry in entries)
        self._log(
            f"login {event.mechanism} user={username} ok: {len(stored)} messages, {octets} octets"
        )

    def _open_and_read(self, blob_id: str) -> tuple[BinaryIO, bytes]:
        """Open a message file and read its first piece: one worker-thread hop for most mail."""
        handle = self.ctx.blobs.open_blocking(blob_id)
        try:
            return handle, handle.read(CHUNK_SIZE)
        except BaseException:
            handle.close()
            raise

    async def _on_retrieve(self, event: Retrieve) -> None:
        read_ahead = self.read_ahead
        assert read_ahead is not None
        maildrop, deleted = self.conn.maildrop, self.conn.deleted
        message = None
        if event.body_lines is None:  # TOP reads only the start of a message: no read-ahead
            message = await read_ahead.message(event.number, maildrop, deleted)
        if message is None:
            await self._stream(event)
            return
        self.conn.send_message(message)
        # Out now, in one write: a pipelining client's RETRs must not pile up in memory.
        await self._flush()
        read_ahead.read_on(maildrop, deleted)

    async def _stream(self, event: Retrieve) -> None:
        blob_id, size = self.blob_ids[event.entry.key], event.entry.size
        loop = asyncio.get_running_loop()
        try:
            handle, piece = await loop.run_in_executor(None, self._open_and_read, blob_id)
        except OSError as exc:
            self._log(f"message {blob_id} of {self.mailbox} unreadable: {exc}")
            self.conn.refuse(replies.MESSAGE_UNAVAILABLE)
            return
        try:
            self.conn.begin_content()
            sent = 0
            while piece:
                self.conn.send_content(piece)
                sent += len(piece)
                if sent >= size or not self.conn.wants_content:
                    # The announced size is all there is (or TOP has its lines): the end goes
                    # out with the last piece in one write, when the core next needs input.
                    break
                await self._flush()
                try:
                    piece = await loop.run_in_executor(None, handle.read, CHUNK_SIZE)
                except OSError as exc:
                    # The +OK is out: a -ERR now would be read as message content. Dropping the
                    # connection without the terminator is the only signal a client can trust.
                    self._log(f"reading message {blob_id} failed: {exc}; dropping session")
                    raise _Dropped from exc
            self.conn.end_content()
        finally:
            handle.close()

    async def _on_update(self, event: Update) -> None:
        assert self.mailbox is not None
        keys = [entry.key for entry in event.deleted]
        if keys:
            self.in_update = True
            try:
                # Shielded: once the client's QUIT has put the session in UPDATE, a shutdown
                # must not leave the deletions half-known; the write is one short transaction.
                await asyncio.shield(self._apply_deletions(self.mailbox, keys))
            except Exception:
                log.exception("%s[%s]: UPDATE of %s failed", self.service, self.cid, self.mailbox)
                self.conn.refuse(replies.UPDATE_FAILED)
                return
            finally:
                self.in_update = False
        self.conn.finish_update()
        self._log(f"quit user={self.mailbox}: deleted={len(keys)} left={event.remaining}")

    async def _apply_deletions(self, mailbox: str, keys: list[int]) -> None:
        loop = asyncio.get_running_loop()
        now = time.time()
        store = self.ctx.store
        await loop.run_in_executor(None, store.mark_deleted, mailbox, keys, now)
        if self.ctx.config.deleted_retention <= 0:
            # retention.deleted = "0": nothing is kept for recovery, remove the content now.
            await loop.run_in_executor(None, store.purge_deleted, now + 1.0)


class Pop3Link(SessionLink):
    """One POP3 connection (net/link.py): a large RETR to a slow client holds one piece in
    memory, because the session waits for ``writable`` whenever ``write`` says so."""

    def __init__(self, ctx: Pop3Context, service: str, settings: SessionSettings) -> None:
        implicit_tls = ctx.tls_context if settings.tls_active else None  # pop3s (RFC 8314)
        super().__init__(COMMAND_TIMEOUT, BUFFER_LIMIT, ctx.connections, implicit_tls)
        self.ctx = ctx
        self.service = service
        self.settings = settings

    def start_session(self) -> Pop3Session:
        return Pop3Session(self.ctx, self.service, self.settings, self)

    def refusal(self, refused: Refusal) -> bytes:
        # RFC 3206 §4: [SYS/TEMP], a problem of the server's that goes away; then the close.
        if refused.in_all:
            return TOO_MANY_CONNECTIONS_IN_ALL.to_bytes()
        text = f"too many connections from [{refused.client}]; try again later"
        return replies.err(text, replies.CODE_SYS_TEMP).to_bytes()


TOO_MANY_CONNECTIONS_IN_ALL = replies.err(
    "too many connections; try again later", replies.CODE_SYS_TEMP
)
