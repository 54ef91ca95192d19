"""One connection's socket end for a protocol session: the asyncio.Protocol shared by SMTP and POP3.

Received bytes are kept as they come until the session asks for them (``read``); reading pauses
while more than ``buffer_limit`` octets wait unread, so a client cannot make us hold an unbounded
amount. The command time-out is one timer per connection, re-armed only when it fires while the
session is not (or not long enough) waiting for a command, instead of a timer around every read
(the profile behind issue 7: streams and a timer per read were about a fifth of the event loop at
20 sessions). ``write`` never waits: it says whether the transport asked us to stop
(``pause_writing``), and only then does the session wait for ``writable``.

Each protocol's link (``SmtpLink``, ``Pop3Link``) only says which session it starts, and what it
answers a connection over the limits.

Connection limits (``ConnectionLimits``, issue 12): every connection of every listener is counted
from accept to close, per client address (IPv6: per /64) and in all, because each holds a file
descriptor whatever it does; a connection over a limit is answered and closed before any session
starts. So that a connection is counted from accept on, implicit TLS (ports 465 and 995) is
started here, on the accepted connection, not by the listener: asyncio's listener would make the
link only after the handshake, leaving connections that never finish one (up to
``HANDSHAKE_TIMEOUT`` each) uncounted.

Send time-out (``send_timeout``): a client that stops reading what we send would otherwise hold
its connection, and its place in those limits, for ever: the session waits in ``writable`` and
the command time-out never runs. Past ``send_timeout`` without the transport draining, the
connection is aborted (not closed: closing waits to send what is buffered) and the session gets
``SendTimeout``. ``close`` is bounded the same way: a connection still holding unsent bytes that
long after it was closed is aborted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from todoku.mailauth.limits import client_key
from todoku.net.idle import Idle

log = logging.getLogger("todoku.net")

HANDSHAKE_TIMEOUT = 60.0
LOG_EVERY = 60.0  # a client's refusals are logged at most once in this many seconds
LOGGED_CLIENTS = 10_000  # past this many clients remembered for that, forget the quiet ones


class SendTimeout(TimeoutError):
    """The client read nothing of what we sent for ``send_timeout`` seconds."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is not served."""

    client: str  # the address it came from
    in_all: bool  # the server's limit (max_connections), not the client's own


class ConnectionLimits:
    """Connections held now, in all and per client address; shared by every listener.

    ``admit`` when a connection is accepted, ``release`` once when it is gone. Refusals are logged
    once a minute per client address (and once a minute for the total), saying how many more were
    refused meanwhile, so a flood of connections is not also a flood of log lines. Time comes from
    an injected clock.
    """

    def __init__(
        self,
        max_connections: int,
        max_per_client: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client  # 0: no limit per address
        self.clock = clock
        self.open = 0
        self._per_client: dict[str, int] = {}
        # client key (or "" for the total) → (when a refusal was last logged, refusals since)
        self._logged: dict[str, tuple[float, int]] = {}
        self._forget_at = LOGGED_CLIENTS

    def held(self, ip: str) -> int:
        """Connections held now from ``ip``'s address (its /64 for IPv6)."""
        return self._per_client.get(client_key(ip), 0)

    def admit(self, ip: str) -> Refusal | None:
        key = client_key(ip)
        count = self._per_client.get(key, 0)
        if self.max_per_client and count >= self.max_per_client:
            self._log_refusal(
                key,
                f"refused a connection from [{ip}]: {count} open from"
                f" {'its /64 ' + key if '/' in key else 'that address'}"
                f" (limits.max_connections_per_ip = {self.max_per_client})",
            )
            return Refusal(ip, in_all=False)
        if self.open >= self.max_connections:
            self._log_refusal(
                "",
                f"refused a connection from [{ip}]: {self.open} open in all"
                f" (limits.max_connections = {self.max_connections})",
            )
            return Refusal(ip, in_all=True)
        self.open += 1
        self._per_client[key] = count + 1
        return None

    def release(self, ip: str) -> None:
        key = client_key(ip)
        count = self._per_client.pop(key, 0)
        if count > 1:
            self._per_client[key] = count - 1
        self.open = max(0, self.open - 1)

    def _log_refusal(self, key: str, text: str) -> None:
        now = self.clock()
        last = self._logged.get(key)
        if last is not None and now - last[0] < LOG_EVERY:
            self._logged[key] = (last[0], last[1] + 1)
            return
        more = last[1] if last is not None else 0
        self._logged[key] = (now, 0)
        said = f"; {more} more refused since the last line about it" if more else ""
        log.warning("%s%s; logged at most once a minute", text, said)
        if len(self._logged) > self._forget_at:
            quiet = [k for k, (when, _) in self._logged.items() if now - when >= LOG_EVERY]
            for k in quiet:
                del self._logged[k]
            # Amortised: the next sweep waits until the table has doubled again.
            self._forget_at = max(LOGGED_CLIENTS, 2 * len(self._logged))


class LinkedSession(Protocol):
    """What a link needs from the session it carries."""

    task: asyncio.Task[None] | None
    waiting_for_command: bool

    def stopping(self) -> bool: ...

    async def run(self) -> None: ...


def feed_protocol(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as a transport would: ``data_received``, or through
    ``get_buffer``/``buffer_updated`` for a buffered protocol (the TLS one start_tls puts in place,
    for bytes read before it took the connection; also used by web/admission.py)."""
    if not hasattr(protocol, "get_buffer"):
        cast(asyncio.Protocol, protocol).data_received(data)
        return
    buffered = cast(asyncio.BufferedProtocol, protocol)
    view = memoryview(data)
    while view:
        buffer = memoryview(buffered.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        buffered.buffer_updated(size)
        view = view[size:]


class SessionLink(asyncio.Protocol):
    def __init__(
        self,
        command_timeout: float,
        buffer_limit: int,
        limits: ConnectionLimits | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        send_timeout: float | None = None,
    ) -> None:
        self.command_timeout = command_timeout
        self.send_timeout = send_timeout  # None: the session bounds its own sends
        self.buffer_limit = buffer_limit
        self.limits = limits
        self.implicit_tls = implicit_tls  # TLS from the first byte (RFC 8314): started here
        self._counted: str | None = None  # the client address this connection holds in limits
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
        self._handshake: asyncio.Task[None] | None = None  # implicit TLS being started
        self._close_timer: asyncio.TimerHandle | None = None  # bounds a close with unsent bytes

    def start_session(self) -> LinkedSession:
        raise NotImplementedError

    def refusal(self, refused: Refusal) -> bytes:
        """What the protocol answers a connection over the limits, before closing it."""
        raise NotImplementedError

    # ------------------------------------------------------------ asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's.
        self.transport = cast(asyncio.Transport, transport)
        if self.limits is not None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            refused = self.limits.admit(ip)
            if refused is not None:
                self._lost = True
                if self.implicit_tls is None:
                    # The refusal instead of the greeting. On an implicit-TLS port it would need
                    # a handshake first, the very cost the limit is there to refuse: just close.
                    self.transport.write(self.refusal(refused))
                self.transport.close()
                return
            self._counted = ip
        self._idle_timer = self.loop.call_at(
            self.loop.time() + self.command_timeout, self._check_idle
        )
        if self.implicit_tls is not None:
            # Nothing may reach data_received before the handshake takes the connection over.
            self.transport.pause_reading()
            self._handshake = self.loop.create_task(self._implicit_tls(self.implicit_tls))
        else:
            self._start_session()

    def _start_session(self) -> None:
        self.session = session = self.start_session()
        session.task = self.loop.create_task(session.run())

    async def _implicit_tls(self, context: ssl.SSLContext) -> None:
        # uvloop starts reading when connection_made returns, whatever it asked: the start of
        # the client's handshake may be here already. It goes to the TLS protocol start_tls puts
        # in place, before that protocol is started (the callback runs ahead of the ones
        # start_tls schedules), as the transport would have given it.
        early = b"".join(self._received)
        self._received = []
        self._received_size = 0
        if early:
            self.loop.call_soon(self._hand_over, early)
        try:
            await self.start_tls(context)
        except Exception as exc:  # noqa: BLE001 - any failure ends this connection, nothing else
            if log.isEnabledFor(logging.DEBUG):
                log.debug("TLS handshake failed: %s: %s", type(exc).__name__, exc)
            self.close()
            return
        self._start_session()

    def _hand_over(self, data: bytes) -> None:
        """Give bytes read before start_tls to the TLS protocol now reading the connection."""
        protocol = self.transport.get_protocol() if self.transport is not None else self
        if protocol is self or self._lost:
            return  # start_tls has failed already, or not begun: nothing to give them to
        feed_protocol(protocol, data)

    def data_received(self, data: bytes) -> None:
        self._received.append(data)
        self._received_size += len(data)
        if self._reader is not None:
            self._wake_reader()
        elif self.session is None and not self._reading_paused and self.transport is not None:
            # Before a session (the client's TLS handshake, read early): no more until it starts.
            self._reading_paused = True
            self.transport.pause_reading()
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
        self._uncount()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
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

    def _uncount(self) -> None:
        """Give the connection's place in the limits back; once, however the connection ends."""
        if self._counted is not None and self.limits is not None:
            self.limits.release(self._counted)
        self._counted = None

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
            if self.send_timeout is None:
                await self._writable
                return
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self._writable
            except TimeoutError:
                self._writable = None
                self.abort()
                raise SendTimeout(f"nothing read for {self.send_timeout:g}s") from None

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
        try:
            transport = await self.loop.start_tls(
                self.transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except BaseException:
            # The connection is closed, and connection_lost never comes for a failed handshake.
            self._lost = True
            self._uncount()
            raise
        if transport is None:
            self._lost = True
            self._uncount()
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
            if (
                self.send_timeout is not None
                and not self._lost
                and self._close_timer is None
                and self.transport.get_write_buffer_size() > 0
            ):
                # Closing waits until the buffered bytes are sent: bounded like a send.
                self._close_timer = self.loop.call_later(self.send_timeout, self._abort_if_open)

    def _abort_if_open(self) -> None:
        self._close_timer = None
        if not self._lost:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now, throwing away whatever is not sent yet."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.transport is not None and not self._lost:
            self.transport.abort()
