"""One connection's socket end for a protocol session: the asyncio.Protocol shared by SMTP and POP3.

Received bytes are kept as they come until the session asks for them (``read``); reading pauses
while more than ``buffer_limit`` octets wait unread, so a client cannot make us hold an unbounded
amount. The command time-out is one timer per connection, re-armed only when it fires while the
session is not (or not long enough) waiting for a command, instead of a timer around every read
(the profile behind issue 7: streams and a timer per read were about a fifth of the event loop at
20 sessions). ``write`` never waits: it says whether the transport asked us to stop
(``pause_writing``), and only then does the session wait for ``writable``.

Each protocol's link (``SmtpLink``, ``Pop3Link``) only says which session it starts.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol, cast

from todoku.net.idle import Idle

HANDSHAKE_TIMEOUT = 60.0


class LinkedSession(Protocol):
    """What a link needs from the session it carries."""

    task: asyncio.Task[None] | None
    waiting_for_command: bool

    def stopping(self) -> bool: ...

    async def run(self) -> None: ...


class SessionLink(asyncio.Protocol):
    def __init__(self, command_timeout: float, buffer_limit: int) -> None:
        self.command_timeout = command_timeout
        self.buffer_limit = buffer_limit
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.session: LinkedSession | None = None
        self._received: list[bytes] = []
        self._received_size = 0
        self._eof = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._timed_out = False
        self._reader: asyncio.Future[None] | None = None  # the session waiting for bytes
        self._writable: asyncio.Future[None] | None = None  # the session waiting for a drain
        self._waiting_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def start_session(self) -> LinkedSession:
        raise NotImplementedError

    # ------------------------------------------------------------ asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's.
        self.transport = cast(asyncio.Transport, transport)
        self._idle_timer = self.loop.call_at(self.loop.time() + self.command_timeout, self._check_idle)
        self.session = session = self.start_session()
        session.task = self.loop.create_task(session.run())

    def data_received(self, data: bytes) -> None:
        self._received.append(data)
        self._received_size += len(data)
        if self._reader is not None:
            self._wake_reader()
        elif self._received_size > self.buffer_limit and not self._reading_paused:
            self._reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # close our side too: neither protocol has a use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._wake_reader()
        writable = self._writable
        if writable is not None:
            self._writable = None
            if not writable.done():
                writable.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        writable = self._writable
        if writable is not None:
            self._writable = None
            if not writable.done():
                writable.set_result(None)

    # ------------------------------------------------------------ what the session calls

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None:
            self._reader = None
            if not reader.done():
                reader.set_result(None)

    def _check_idle(self) -> None:
        """The one idle timer: fires at most every command_timeout, re-armed as needed."""
        self._idle_timer = None
        if self._lost:
            return
        now = self.loop.time()
        if self._reader is not None and now - self._waiting_since >= self.command_timeout:
            self._timed_out = True
            self._wake_reader()
            return
        due = (self._waiting_since if self._reader is not None else now) + self.command_timeout
        self._idle_timer = self.loop.call_at(due, self._check_idle)

    async def read(self) -> bytes | Idle:
        """Everything received since the last call (``b""`` at the end), or why there is nothing.

        Shutdown may cancel the session only while it waits here (``waiting_for_command``)."""
        if not self._received:
            if self._eof:
                return b""
            session = self.session
            assert session is not None
            if session.stopping():
                return Idle.STOPPING
            self._waiting_since = self.loop.time()
            self._reader = reader = self.loop.create_future()
            self._resume_reading()
            session.waiting_for_command = True
            try:
                await reader
            except asyncio.CancelledError:
                self._reader = None
                if not session.stopping():
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                return Idle.STOPPING
            finally:
                session.waiting_for_command = False
            if self._timed_out:
                return Idle.TIMED_OUT
            if not self._received:
                return b""
        received = self._received
        data = received[0] if len(received) == 1 else b"".join(received)
        self._received = []
        self._received_size = 0
        self._resume_reading()
        return data

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    def write(self, data: bytes) -> bool:
        """Hand ``data`` to the transport; True if the session must wait for ``writable()``."""
        if self._lost or self.transport is None:
            raise ConnectionResetError("connection lost")
        self.transport.write(data)
        return self._writing_paused

    async def writable(self) -> None:
        if self._writing_paused:
            if self._writable is None:
                self._writable = self.loop.create_future()
            await self._writable

    async def send(self, data: bytes) -> None:
        """Write, and wait while the client is not reading what we sent."""
        if self.write(data):
            await self.writable()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        assert self.transport is not None
        # RFC 3207 §4.2, RFC 2595 §4 (and CVE-2011-0411): bytes that came in clear text after
        # STARTTLS/STLS are thrown away, never read as commands of the encrypted session.
        self._received = []
        self._received_size = 0
        self._reading_paused = False
        transport = await self.loop.start_tls(
            self.transport, self, context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
        )
        if transport is None:
            raise ConnectionResetError("connection lost during the TLS handshake")
        self.transport = transport

    def extra(self, name: str) -> object:
        return self.transport.get_extra_info(name) if self.transport is not None else None

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.transport is not None:
            self.transport.close()
