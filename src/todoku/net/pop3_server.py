"""The POP3 adapter: carries bytes between a socket and ``proto.pop3.server``, and makes the decisions.

One ``Pop3Session`` per connection. Invariants:
- A mailbox is open in at most one session of this process (the maildrop lock, RFC 1939 §8): the
  lock is an entry in ``Pop3Context.locks``, taken after a good login and dropped in ``run()``'s
  ``finally``, so it never outlives its session, however the session ends (QUIT, drop, crash of
  the handler, server shutdown).
- Nothing is deleted unless the client's QUIT reached UPDATE: deletion marks live in the core
  only, and the one store write (``mark_deleted``) happens in ``_on_update``.
- RETR and TOP read the message file in ``CHUNK_SIZE`` pieces in a worker thread and wait for the
  socket to drain after each, so a session holds at most about one piece of any message in memory.
- Slow work (password hashing, SQLite, file reads) runs in worker threads; the event loop, which
  every session shares, never waits for a disk or a hash.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from todoku.config import Config
from todoku.net import tls as tls_util
from todoku.net.idle import Idle, read_next
from todoku.policy.auth import AuthThrottle, verify_password
from todoku.proto.pop3 import replies
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
from todoku.store.api import Store, StoredMessage

log = logging.getLogger("todoku.pop3")

READ_SIZE = 64 * 1024
CHUNK_SIZE = 256 * 1024
COMMAND_TIMEOUT = 600.0  # RFC 1939 §3: an autologout timer of at least 10 minutes
HANDSHAKE_TIMEOUT = 60.0
SEND_TIMEOUT = 600.0  # a client that stops reading in the middle of RETR is dropped after this


@dataclass
class Pop3Context:
    """What every POP3 session of this server shares."""

    config: Config
    store: Store
    throttle: AuthThrottle  # the same object SMTP AUTH uses: one budget of failures per address
    tls_context: ssl.SSLContext | None
    stopping: bool = False
    sessions: set[Pop3Session] = field(default_factory=set)
    locks: dict[str, Pop3Session] = field(default_factory=dict)  # mailbox → the session holding it
    next_session: int = 0

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


class Pop3Session:
    def __init__(
        self,
        ctx: Pop3Context,
        service: str,
        settings: SessionSettings,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.ctx = ctx
        self.service = service
        self.reader = reader
        self.writer = writer
        self.cid = ctx.session_id()
        peer = writer.get_extra_info("peername") or ("unknown", 0)
        self.client_ip = str(peer[0])
        self.conn = ServerConnection(settings)
        self.mailbox: str | None = None  # set while this session holds the mailbox's lock
        self.messages: dict[int, StoredMessage] = {}
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
            self._release_lock()
            self.ctx.sessions.discard(self)
            try:
                self.writer.close()
            except (ConnectionError, RuntimeError):
                pass
            self._log(f"disconnect from [{self.client_ip}]")

    def _release_lock(self) -> None:
        if self.mailbox is not None and self.ctx.locks.get(self.mailbox) is self:
            del self.ctx.locks[self.mailbox]
        self.mailbox = None

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.writer.drain()

    def stopping(self) -> bool:
        return self.ctx.stopping

    async def _read(self) -> None:
        await self._flush()
        data = await read_next(self, READ_SIZE, COMMAND_TIMEOUT)
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
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await self.writer.start_tls(self.ctx.tls_context)
        self.conn.tls_started()
        self._log(f"STLS: {tls_util.describe(self.writer.get_extra_info('ssl_object'))}")

    # ----------------------------------------------------------------- decisions

    def _check_credentials(self, username: str, password: str) -> bool:
        user = self.ctx.store.get_user(username)
        return verify_password(user.password_hash if user else None, password)

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
            good = await loop.run_in_executor(
                None, self._check_credentials, username, event.password
            )
        if not good:
            delay = throttle.failure(self.client_ip)
            self._log(f"login {event.mechanism} user={username} failed")
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
            stored = await loop.run_in_executor(None, self.ctx.store.list_messages, username)
        except Exception:
            log.exception("%s[%s]: cannot list mailbox %s", self.service, self.cid, username)
            self._release_lock()
            self.conn.refuse(replies.MAILDROP_UNAVAILABLE)
            return
        self.messages = {m.id: m for m in stored}
        entries = [MaildropEntry(m.id, m.size, m.unique_id) for m in stored]
        self.conn.accept_login(username, entries)
        octets = sum(m.size for m in stored)
        self._log(
            f"login {event.mechanism} user={username} ok: {len(stored)} messages, {octets} octets"
        )

    def _open_and_read(self, blob_id: str) -> tuple[BinaryIO, bytes]:
        """Open a message file and read its first piece: one worker-thread hop for most mail."""
        handle = self.ctx.store.open_blob(blob_id)
        try:
            return handle, handle.read(CHUNK_SIZE)
        except BaseException:
            handle.close()
            raise

    async def _on_retrieve(self, event: Retrieve) -> None:
        message = self.messages[event.entry.key]
        loop = asyncio.get_running_loop()
        try:
            handle, piece = await loop.run_in_executor(None, self._open_and_read, message.blob_id)
        except OSError as exc:
            self._log(f"message {message.blob_id} of {self.mailbox} unreadable: {exc}")
            self.conn.refuse(replies.MESSAGE_UNAVAILABLE)
            return
        try:
            self.conn.begin_content()
            sent = 0
            while piece:
                self.conn.send_content(piece)
                sent += len(piece)
                if sent >= message.size or not self.conn.wants_content:
                    # The announced size is all there is (or TOP has its lines): the end goes
                    # out with the last piece in one write, when the core next needs input.
                    break
                await self._flush()
                try:
                    piece = await loop.run_in_executor(None, handle.read, CHUNK_SIZE)
                except OSError as exc:
                    # The +OK is out: a -ERR now would be read as message content. Dropping the
                    # connection without the terminator is the only signal a client can trust.
                    self._log(f"reading message {message.blob_id} failed: {exc}; dropping session")
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
