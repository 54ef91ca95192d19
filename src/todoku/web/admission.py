"""Web connections counted from accept, like the mail listeners' (issue 12, finding 3).

aiohttp's own sites accept every connection, and with TLS they do not call the protocol before the
handshake ends: a client that opens connections and never starts a handshake would hold file
descriptors that no limit sees, and starve the mail listeners (found by the second attack pass).
So the web listeners accept plain TCP with this protocol: it asks the server's shared
``ConnectionLimits`` (net/link.py) first and closes a connection over the limits at once (no
answer: on https one would need a handshake, the very cost the limit refuses), starts TLS itself
with a bounded handshake, and only then hands the connection to aiohttp's request handler. The
count is released once, when the connection is gone or its handshake failed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from todoku.net.link import ConnectionLimits, feed_protocol

log = logging.getLogger("todoku.web")

# A browser finishes a handshake in well under a second; a client that has not after this long
# is not going to, and its connection counts against the limits meanwhile.
HANDSHAKE_TIMEOUT = 10.0


class CountedConnection(asyncio.Protocol):
    def __init__(
        self,
        limits: ConnectionLimits | None,
        make_handler: Callable[[], asyncio.Protocol],
        tls: ssl.SSLContext | None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.limits = limits
        self.make_handler = make_handler
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.loop = asyncio.get_running_loop()
        self.raw: asyncio.Transport | None = None
        self.handler: asyncio.Protocol | None = None
        self.counted: str | None = None  # the client address this connection holds in limits
        self.early: list[bytes] = []  # bytes read before the handshake took the connection
        self.handshake: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's.
        self.raw = cast(asyncio.Transport, transport)
        if self.limits is not None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            if self.limits.admit(ip) is not None:
                self.raw.abort()
                return
            self.counted = ip
        if self.tls is None:
            self._attach(self.raw)
            return
        self.raw.pause_reading()  # nothing for the handler before the handshake
        self.handshake = self.loop.create_task(self._start_tls(self.tls))

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        assert self.raw is not None
        # uvloop may read the start of the client's handshake before pause_reading takes effect:
        # it goes to the TLS protocol start_tls puts in place, as the transport would have given it.
        early = b"".join(self.early)
        self.early = []
        if early:
            self.loop.call_soon(self._hand_over, early)
        try:
            transport = await self.loop.start_tls(
                self.raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - any failure ends this connection, nothing else
            log.debug("web TLS handshake failed: %s: %s", type(exc).__name__, exc)
            transport = None
        if transport is None:
            # connection_lost does not come for a failed handshake: release here.
            self._release()
            self.raw.abort()
            return
        self._attach(transport)

    def _hand_over(self, data: bytes) -> None:
        """Give bytes read before start_tls to the TLS protocol now reading the connection."""
        protocol = self.raw.get_protocol() if self.raw is not None else self
        if protocol is self:
            return  # start_tls has not taken the connection (it failed): nothing to give to
        feed_protocol(protocol, data)

    def _attach(self, transport: asyncio.Transport) -> None:
        self.handler = self.make_handler()
        self.handler.connection_made(transport)

    def _release(self) -> None:
        if self.counted is not None and self.limits is not None:
            self.limits.release(self.counted)
        self.counted = None

    # ---------------------------------------------------------------- forwarded to the handler

    def data_received(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.data_received(data)
        elif len(self.early) < 16:  # read before the handshake started; bounded
            self.early.append(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self.handshake is not None and not self.handshake.done():
            self.handshake.cancel()
        if self.handler is not None:
            self.handler.connection_lost(exc)
