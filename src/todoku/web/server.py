"""The https and http listeners, run by aiohttp inside todoku's own event loop.

app.py binds the sockets together with the mail listeners (before any privilege drop) and
hands them here; ``WebServer.start`` serves them, ``stop`` closes them first and gives requests
in flight a few seconds.

Limits: a request line or header field at most ``MAX_LINE`` octets, at most ``MAX_HEADERS``
fields, bodies at most routes.MAX_BODY; an idle keep-alive connection is closed after
``KEEPALIVE`` seconds. Connections are counted from accept in the mail listeners' limits and the
TLS handshake is bounded (web/admission.py), so the web side cannot hold descriptors the mail
listeners need.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from todoku.config import Config
from todoku.net.link import ConnectionLimits
from todoku.policy.auth import AuthThrottle
from todoku.queue.wake import touch_wake_file, wake_path
from todoku.store.backend import Storage
from todoku.web.admin import AdminPages
from todoku.web.admission import CountedConnection
from todoku.web.metrics import Metrics
from todoku.web.routes import SessionSource, http_app, https_app

log = logging.getLogger("todoku.web")

KEEPALIVE = 15.0
MAX_LINE = 8190  # aiohttp's default, said here so that it is a decision
MAX_HEADERS = 64
SHUTDOWN_GRACE = 5.0


@dataclass
class WebServer:
    sites: list[tuple[str, web.Application, socket.socket, ssl.SSLContext | None]]
    limits: ConnectionLimits | None = None
    # The https certificate: read at each new connection, so a reload (SIGHUP) that renews it
    # reaches the next connection, as it does for the mail listeners (app.Server.apply).
    tls_context: ssl.SSLContext | None = None
    runners: list[web.AppRunner] = field(default_factory=list)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)

    async def start(self) -> None:
        for name, app, sock, context in self.sites:
            runner = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                keepalive_timeout=KEEPALIVE,
                max_line_size=MAX_LINE,
                max_field_size=MAX_LINE,
                max_headers=MAX_HEADERS,
                shutdown_timeout=SHUTDOWN_GRACE,
            )
            await runner.setup()
            self.runners.append(runner)
            handler = runner.server
            assert handler is not None  # set by setup()

            def counted(
                handler: Callable[[], asyncio.Protocol] = handler,
                tls: bool = context is not None,
            ) -> CountedConnection:
                return CountedConnection(self.limits, handler, self.tls_context if tls else None)

            loop = asyncio.get_running_loop()
            self.servers.append(await loop.create_server(counted, sock=sock))
            host, port = sock.getsockname()[:2]
            log.info("listening for %s on %s:%d", name, host, port)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()  # no new connections; those open finish below
        self.servers.clear()
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


def build_web(
    config: Config,
    storage: Storage,
    metrics: Metrics,
    sockets: Mapping[str, socket.socket],
    tls_context: ssl.SSLContext,
    sessions: SessionSource,
    limits: ConnectionLimits | None = None,
    throttle: AuthThrottle | None = None,
) -> WebServer | None:
    """The web listeners among ``sockets`` (bound by app.py), or None when none is configured.
    ``storage``: what the admin pages and /metrics read (and the admin pages change);
    ``throttle``: the login failure counters SMTP AUTH and POP3 use, shared by the admin login
    (a fresh one when not given)."""
    if "https" not in sockets and "http" not in sockets:
        return None
    ports = {name: int(sock.getsockname()[1]) for name, sock in sockets.items()}
    sites: list[tuple[str, web.Application, socket.socket, ssl.SSLContext | None]] = []
    if "https" in sockets:
        admin = AdminPages(
            config,
            storage,
            metrics,
            throttle if throttle is not None else AuthThrottle(),
            wake=lambda: touch_wake_file(wake_path(config)),
            ports=ports,
        )
        app = https_app(config, storage, metrics, ports, sessions, admin)
        sites.append(("https", app, sockets["https"], tls_context))
    if "http" in sockets:
        sites.append(("http", http_app(config, ports), sockets["http"], None))
    return WebServer(sites, limits, tls_context)
