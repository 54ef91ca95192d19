"""The composition root: reads the configuration, opens storage, starts every listener in one
process, and stops them cleanly.

Shutdown (SIGTERM, SIGINT): listeners close first, so no new session starts; sessions waiting
for a command get ``421 4.3.2``; a session that is storing a message finishes that (its client
gets the 250 it is owed) and is then told 421. Storage closes last.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from todoku.config import Config, ConfigError, ListenAddress
from todoku.mailauth.setup import inbound_policy, prepare_dkim_keys
from todoku.net import tls as tls_util
from todoku.net.link import ConnectionLimits
from todoku.net.pop3_server import Pop3Context, Pop3Link
from todoku.net.pop3_server import settings_for as pop3_settings_for
from todoku.net.smtp_server import SmtpContext, SmtpLink, settings_for
from todoku.policy.auth import AuthThrottle
from todoku.policy.directory import Directory
from todoku.proto.smtp.server import SessionSettings
from todoku.queue.runner import MAX_PARALLEL_MESSAGES, QueueRunner
from todoku.queue.setup import build_runner
from todoku.store.datadir import check_data_dir, open_store
from todoku.store.sqlite import SqliteStore
from todoku.web.metrics import Metrics
from todoku.web.server import WebServer, build_web

log = logging.getLogger("todoku.app")

SHUTDOWN_GRACE = 30.0
# Open files the server holds whatever its clients do: standard streams, listeners, SQLite (the
# database, its WAL and shared memory), DNS sockets, the event loop's own, a few to spare ...
RESERVED_FILES = 64
# ... and the outbound queue's: a socket and a message file for each attempt it runs at once.
QUEUE_FILES = 2 * MAX_PARALLEL_MESSAGES
# A client connection: its socket, and the message file it writes (DATA) or reads (RETR).
FILES_PER_CONNECTION = 2


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed, else the standard library's.

    uvloop (libuv) makes the SMTP accept path cheaper: measured with 20 smtp-source sessions of
    1 KiB on a loaded 2-core machine, 2.67 instead of 3.08 ms of server CPU per message and 224
    instead of 169 messages/s (bench/, issue 7). ``TODOKU_EVENT_LOOP=asyncio`` picks the stdlib
    loop, for comparing the two or ruling uvloop out when chasing a bug.
    """
    if os.environ.get("TODOKU_EVENT_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


SMTP_SERVICES = ("smtp", "submission", "submissions")
POP3_SERVICES = ("pop3", "pop3s")


def purge_interval(retention: float) -> float:
    """How often to look for deleted mail past ``retention.deleted``: often enough that it goes
    within a tenth of the retention time, at most hourly, at least a second apart."""
    return max(1.0, min(3600.0, retention / 10 if retention > 0 else 60.0))


async def purge_deleted_mail(store: SqliteStore, retention: float) -> None:
    """Forget mail deleted by POP3 clients more than ``retention`` seconds ago, forever.

    The deletion times are in the database, so a restart loses nothing: the first pass runs at
    start-up. Each pass is one short transaction in a worker thread; sessions never wait for it.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            purged = await loop.run_in_executor(None, store.purge_deleted, time.time() - retention)
        except Exception:
            log.exception("purging deleted mail failed; trying again later")
        else:
            if purged:
                log.info("purged %d deleted message(s) past retention.deleted", purged)
        await asyncio.sleep(purge_interval(retention))


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit (logged); return the soft limit.

    Each connection holds a file descriptor, so the limit decides how many connections the server
    can hold at all; the usual soft limit (1024) is far below what the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit is no number setrlimit takes for open files; 2^20 is Linux's nr_open.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files: cannot raise the soft limit %d to %d: %s", soft, target, exc)
        else:
            log.info("open files: soft limit raised from %d to the hard limit %d", soft, target)
            soft = target
    return soft


def connection_ceiling(open_files: int) -> int:
    """The most connections ``open_files`` descriptors can carry next to what the server keeps."""
    return max(1, (open_files - RESERVED_FILES - QUEUE_FILES) // FILES_PER_CONNECTION)


def connection_limits(config: Config, open_files: int) -> ConnectionLimits:
    """``[limits] max_connections`` (never more than the open-file limit can carry; that number
    when unset) and ``max_connections_per_ip``, for every listener together (issue 12)."""
    ceiling = connection_ceiling(open_files)
    total = ceiling if config.max_connections is None else min(config.max_connections, ceiling)
    if config.max_connections is not None and config.max_connections > ceiling:
        log.warning(
            "limits.max_connections = %d needs more open files than the limit of %d allows:"
            " using %d (raise the limit: ulimit -n, or LimitNOFILE= in a systemd unit)",
            config.max_connections,
            open_files,
            ceiling,
        )
    per_ip = config.max_connections_per_ip
    log.info(
        "connections: at most %d in all (open-file limit %d), %s",
        total,
        open_files,
        f"{per_ip} per client address (IPv6: per /64)" if per_ip else "no limit per client address",
    )
    return ConnectionLimits(total, per_ip)


def ensure_tls(config: Config) -> ssl.SSLContext:
    tls = config.tls
    if tls.self_signed and not (tls.cert.is_file() and tls.key.is_file()):
        log.info(
            "creating a self-signed certificate for %s in %s", config.hostname, tls.cert.parent
        )
        tls_util.make_self_signed(tls.cert, tls.key, config.hostname)
    try:
        return tls_util.server_context(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"tls.cert/tls.key: cannot load {tls.cert} and {tls.key}: {reason}"
        ) from None


def bind_socket(service: str, address: ListenAddress) -> socket.socket:
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"listen.{service}: cannot resolve {address.host}: {exc.strerror}"
        ) from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"listen.{service}: {address}: address already in use") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"listen.{service}: {address}: permission denied (port below 1024?)"
            ) from None
        raise ConfigError(f"listen.{service}: {address}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


@dataclass
class Server:
    """A running todoku: listeners, shared contexts and background tasks."""

    config: Config
    store: SqliteStore
    tls_context: ssl.SSLContext
    smtp: SmtpContext
    servers: list[asyncio.base_events.Server] = field(default_factory=list)
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    # Every listener makes an asyncio.Protocol per connection (net/smtp_server.SmtpLink,
    # net/pop3_server.Pop3Link); the link itself starts implicit TLS (submissions, pop3s), so
    # that the connection limits count a connection from accept on (net/link.py).
    listeners: dict[str, Callable[[], asyncio.Protocol]] = field(default_factory=dict)
    pop3: Pop3Context | None = None
    purge_task: asyncio.Task[None] | None = None
    queue_runner: QueueRunner | None = None
    queue_task: asyncio.Task[None] | None = None
    # The web side (todoku.web): counters for /metrics, and the https/http sockets (bound with
    # the mail listeners, before any privilege drop; its settings are read at start-up).
    metrics: Metrics = field(default_factory=Metrics)
    web_sockets: dict[str, socket.socket] = field(default_factory=dict)
    web: WebServer | None = None

    def bound_address(self, service: str) -> tuple[str, int]:
        name = self.sockets[service].getsockname()
        return str(name[0]), int(name[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for service, make_link in self.listeners.items():
            listener = await loop.create_server(make_link, sock=self.sockets[service])
            self.servers.append(listener)
            log.info("listening for %s on %s", service, self.config.listen[service])
        self.purge_task = asyncio.create_task(
            purge_deleted_mail(self.store, self.config.deleted_retention), name="purge-deleted"
        )
        self.start_queue(loop)
        await self.start_web()
        self.write_listeners_file()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass

    def start_queue(self, loop: asyncio.AbstractEventLoop) -> None:
        """The outbound queue runner (issue 4); new mail wakes it through the store's hook."""
        runner = build_runner(
            self.config, self.store, [self.bound_address(s) for s in self.sockets]
        )

        def wake(items: list[tuple[str, float]]) -> None:  # runs in the store's writer thread
            loop.call_soon_threadsafe(runner.enqueue, items)

        self.store.on_queued = wake
        runner.on_attempt = self.metrics.delivered
        self.queue_runner = runner
        self.queue_task = asyncio.create_task(runner.run(), name="outbound-queue")

    async def start_web(self) -> None:
        def sessions() -> list[str]:  # the listener of every open session, for /metrics
            pop3 = self.pop3.sessions if self.pop3 is not None else set()
            return [s.service for s in self.smtp.sessions] + [s.service for s in pop3]

        sockets = self.sockets | self.web_sockets
        self.web = build_web(
            self.config, self.store, self.metrics, sockets, self.tls_context, sessions
        )
        if self.web is not None:
            await self.web.start()

    async def stop_queue(self) -> None:
        if self.queue_runner is None or self.queue_task is None:
            return
        self.store.on_queued = None
        await self.queue_runner.stop()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await self.queue_task
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("outbound queue stopped with an error")

    def write_listeners_file(self) -> None:
        """``<data_dir>/run/listeners.json``: the bound addresses, for port-0 listeners and scripts."""
        run_dir = self.config.data_dir / "run"
        run_dir.mkdir(exist_ok=True)
        bound = {service: list(self.bound_address(service)) for service in self.sockets}
        bound |= {name: list(sock.getsockname()[:2]) for name, sock in self.web_sockets.items()}
        bound["pid"] = os.getpid()  # type: ignore[assignment]
        temp = run_dir / "listeners.json.tmp"
        temp.write_text(json.dumps(bound))
        os.replace(temp, run_dir / "listeners.json")

    def request_stop(self) -> None:
        if not self.smtp.stopping:
            log.info("stopping")
            self.smtp.stopping = True
            self.stopped.set()

    async def stop(self) -> None:
        self.smtp.stopping = True
        for server in self.servers:
            server.close()
        if self.web is not None:
            await self.web.stop()  # requests in flight get web/server.SHUTDOWN_GRACE
        if self.purge_task is not None:
            self.purge_task.cancel()
        if self.pop3 is not None:
            # POP3 sessions idle at a command get -ERR and close without UPDATE: only a
            # client's own QUIT deletes anything (RFC 1939 §6).
            self.pop3.stopping = True
            for pop3_session in list(self.pop3.sessions):
                if pop3_session.waiting_for_command and pop3_session.task is not None:
                    pop3_session.task.cancel()
        for session in list(self.smtp.sessions):
            if session.waiting_for_command and session.task is not None:
                session.task.cancel()
        pending = [s.task for s in self.smtp.sessions if s.task is not None]
        if self.pop3 is not None:
            pending += [s.task for s in self.pop3.sessions if s.task is not None]
        if self.purge_task is not None:
            pending.append(self.purge_task)
        if pending:
            _, still = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            for task in still:
                task.cancel()
        for server in self.servers:
            try:
                async with asyncio.timeout(5):
                    await server.wait_closed()
            except TimeoutError:
                pass
        await self.stop_queue()
        self.store.close()
        try:
            (self.config.data_dir / "run" / "listeners.json").unlink()
        except OSError:
            pass
        log.info("stopped")


def build_server(config: Config) -> Server:
    """Everything that can fail on a bad configuration happens here, before anything listens."""
    if not config.listen:
        raise ConfigError(
            'listen: no service configured (add smtp = "127.0.0.1:10025" under [listen])'
        )
    check_data_dir(config)
    sockets: dict[str, socket.socket] = {}
    web_sockets: dict[str, socket.socket] = {}
    try:
        for service, address in config.listen.items():
            sockets[service] = bind_socket(service, address)
        for service, web_address in (("https", config.web.https), ("http", config.web.http)):
            if web_address is not None:
                web_sockets[service] = bind_socket(service, web_address)
        tls_context = ensure_tls(config)
        store = open_store(config)
    except ConfigError:
        for sock in [*sockets.values(), *web_sockets.values()]:
            sock.close()
        raise
    store.blobs.sweep_tmp()
    connections = connection_limits(config, raise_open_file_limit())
    throttle = AuthThrottle(
        delay_after=config.auth_fail_delay_after,
        lockout_after=config.auth_lockout_after,
        lockout_seconds=config.auth_lockout_seconds,
        base_delay=config.auth_fail_delay,
    )
    metrics = Metrics()
    smtp = SmtpContext(
        config=config,
        store=store,
        directory=Directory(store, config.domains),
        throttle=throttle,
        tls_context=tls_context,
        connections=connections,
        metrics=metrics,
    )
    if "smtp" in sockets:
        smtp.inbound = inbound_policy(config)  # [policy] checks on the MX only
    server = Server(
        config=config,
        store=store,
        tls_context=tls_context,
        smtp=smtp,
        sockets=sockets,
        metrics=metrics,
        web_sockets=web_sockets,
    )
    for service in SMTP_SERVICES:
        if service in sockets:
            address = config.listen[service]
            settings = settings_for(service, config, address.is_loopback, tls_ready=True)

            def make_link(name: str = service, s: SessionSettings = settings) -> SmtpLink:
                return SmtpLink(smtp, name, s)

            server.listeners[service] = make_link
    if any(service in sockets for service in POP3_SERVICES):
        pop3 = Pop3Context(
            config=config,
            store=store,
            throttle=throttle,
            tls_context=tls_context,
            connections=connections,
            metrics=metrics,
        )
        server.pop3 = pop3
        for service in POP3_SERVICES:
            if service not in sockets:
                continue
            address = config.listen[service]
            pop3_settings = pop3_settings_for(service, config, address.is_loopback, tls_ready=True)

            def make_pop3_link(name: str = service, s=pop3_settings) -> Pop3Link:  # type: ignore[no-untyped-def]
                return Pop3Link(pop3, name, s)

            # The same kind of listener as SMTP's: an asyncio.Protocol per connection.
            server.listeners[service] = make_pop3_link
    return server


async def serve(config: Config, ready: Callable[[Server], None] | None = None) -> None:
    server = build_server(config)
    await server.start()
    if ready is not None:
        ready(server)
    try:
        await asyncio.to_thread(prepare_dkim_keys, config)  # first start: DKIM keys per domain
        await server.stopped.wait()
    finally:
        await server.stop()
