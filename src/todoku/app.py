"""The composition root: reads the configuration, opens storage, starts every listener in one
process, and stops them cleanly.

Shutdown (SIGTERM, SIGINT): listeners close first, so no new session starts; sessions waiting
for a command get ``421 4.3.2``; a session that is storing a message finishes that (its client
gets the 250 it is owed) and is then told 421. Storage closes last.

Start-up as root with ``user`` (``privileges.py``): the listeners are bound and a configured TLS
key is read, then the server becomes that account before it opens the store or accepts anyone.

Reload (SIGHUP): the log file is reopened, then the configuration file is read again. Nothing
changes unless all of the new configuration is usable (it parses, its TLS files load, its new
listeners bind); otherwise one line says why and the running configuration stays. When it is,
new sessions get the new TLS context, limits and settings, listeners are opened and closed, and
one line per changed key says what changed (``config/reload.py``); sessions in progress keep
what they started with, and keys only a restart can change keep their running values.
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
from pathlib import Path
from typing import cast

from todoku import log as logs
from todoku import privileges
from todoku.config import Config, ConfigError, ListenAddress, load_config
from todoku.config import reload as reloading
from todoku.mailauth.setup import inbound_policy, prepare_dkim_keys
from todoku.net import tls as tls_util
from todoku.net.imap_server import ImapContext, ImapLink
from todoku.net.imap_server import settings_for as imap_settings_for
from todoku.net.link import ConnectionLimits
from todoku.net.pop3_server import Pop3Context, Pop3Link
from todoku.net.pop3_server import settings_for as pop3_settings_for
from todoku.net.smtp_server import SmtpContext, SmtpLink, settings_for
from todoku.policy.auth import AuthThrottle
from todoku.policy.directory import Directory
from todoku.proto.imap.server import SessionSettings as ImapSettings
from todoku.proto.pop3.server import SessionSettings as Pop3Settings
from todoku.proto.smtp.server import SessionSettings
from todoku.queue.runner import MAX_PARALLEL_MESSAGES, QueueRunner
from todoku.queue.setup import build_runner, build_tls_reporter
from todoku.queue.tlsrpt_send import TlsReporter
from todoku.store.api import Store
from todoku.store.backend import Storage
from todoku.store.backends import open_store
from todoku.store.datadir import check_data_dir
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend
from todoku.web.metrics import Metrics
from todoku.web.outcomes import DailyOutcomes, keep_saved
from todoku.web.outcomes import save as save_outcomes
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
IMAP_SERVICES = ("imap", "imaps")
ListenerSettings = SessionSettings | Pop3Settings | ImapSettings


def purge_interval(retention: float) -> float:
    """How often to look for deleted mail past ``retention.deleted``: often enough that it goes
    within a tenth of the retention time, at most hourly, at least a second apart."""
    return max(1.0, min(3600.0, retention / 10 if retention > 0 else 60.0))


async def purge_deleted_mail(store: Store, retention: float) -> None:
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
    """The TLS server context from the configured files (made first when self-signed)."""
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


def file_digest(path: Path) -> bytes:
    """What identifies a certificate file's content, to log a renewed one."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b""


@dataclass
class Server:
    """A running todoku: listeners, shared contexts and background tasks."""

    config: Config
    store: SqliteStore  # the mailboxes (POP3 maildrops, the purge) until Mailboxes is wired
    storage: Storage  # users, the queue, content, intake, mailboxes (issue 14)
    tls_context: ssl.SSLContext
    smtp: SmtpContext
    pop3: Pop3Context
    throttle: AuthThrottle
    servers: dict[str, asyncio.base_events.Server] = field(default_factory=dict)
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    # The session settings of each listener, read when a connection is accepted: a reload
    # replaces them for new sessions only. Every listener makes an asyncio.Protocol per
    # connection (net/smtp_server.SmtpLink, net/pop3_server.Pop3Link); the link itself starts
    # implicit TLS (submissions, pop3s), so that the connection limits count a connection from
    # accept on (net/link.py).
    settings: dict[str, ListenerSettings] = field(default_factory=dict)
    open_files: int = 0
    cert_digest: bytes = b""
    purge_task: asyncio.Task[None] | None = None
    outcomes_task: asyncio.Task[None] | None = None  # saves the admin chart's daily counts
    queue_runner: QueueRunner | None = None
    queue_task: asyncio.Task[None] | None = None
    tls_reporter: TlsReporter | None = None  # daily TLS reports (RFC 8460), queue.tlsrpt_send
    tls_task: asyncio.Task[None] | None = None
    reload_task: asyncio.Task[None] | None = None
    reload_again: bool = False  # a SIGHUP came while a reload was running
    # The web side (todoku.web): counters for /metrics, and the https/http sockets (bound with
    # the mail listeners, before any privilege drop; its settings are read at start-up).
    metrics: Metrics = field(default_factory=Metrics)
    web_sockets: dict[str, socket.socket] = field(default_factory=dict)
    web: WebServer | None = None
    imap: ImapContext = field(init=False)  # IMAP sessions work on ``storage`` (issue 17)

    def __post_init__(self) -> None:
        self.imap = ImapContext(
            config=self.config,
            mailboxes=self.storage.mailboxes,
            blobs=self.storage.blobs,
            directory=self.storage.directory,
            throttle=self.throttle,
            tls_context=self.tls_context,
            connections=self.smtp.connections,
            metrics=self.smtp.metrics,
        )

    def bound_address(self, service: str) -> tuple[str, int]:
        name = self.sockets[service].getsockname()
        return str(name[0]), int(name[1])

    def make_link(self, service: str) -> Callable[[], asyncio.Protocol]:
        if service in SMTP_SERVICES:

            def smtp_link() -> SmtpLink:
                return SmtpLink(self.smtp, service, cast(SessionSettings, self.settings[service]))

            return smtp_link

        if service in IMAP_SERVICES:

            def imap_link() -> ImapLink:
                return ImapLink(self.imap, service, cast(ImapSettings, self.settings[service]))

            return imap_link

        def pop3_link() -> Pop3Link:
            return Pop3Link(self.pop3, service, cast(Pop3Settings, self.settings[service]))

        return pop3_link

    async def open_listener(self, service: str) -> None:
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(self.make_link(service), sock=self.sockets[service])
        self.servers[service] = listener
        log.info("listening for %s on %s", service, self.config.listen[service])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for service in self.sockets:
            await self.open_listener(service)
        self.start_purge()
        self.start_queue(loop)
        await self.start_web()
        if self.metrics.daily is not None:
            self.outcomes_task = asyncio.create_task(
                keep_saved(self.metrics.daily), name="save-outcomes"
            )
        self.write_listeners_file()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        except (NotImplementedError, RuntimeError):
            pass

    def start_purge(self) -> None:
        if self.purge_task is not None:
            self.purge_task.cancel()
        self.purge_task = asyncio.create_task(
            purge_deleted_mail(self.store, self.config.deleted_retention), name="purge-deleted"
        )

    def start_queue(self, loop: asyncio.AbstractEventLoop) -> None:
        """The outbound queue runner (issue 4); new mail wakes it through the store's hook."""
        self.tls_reporter = build_tls_reporter(self.config, self.storage)
        runner = build_runner(
            self.config,
            self.storage,
            [self.bound_address(s) for s in self.sockets],
            self.tls_reporter,
        )

        def wake(items: list[tuple[str, float]]) -> None:  # runs in the store's writer thread
            loop.call_soon_threadsafe(runner.enqueue, items)

        self.storage.intake.on_queued(wake)
        runner.on_attempt = self.metrics.delivered
        self.queue_runner = runner
        self.queue_task = asyncio.create_task(runner.run(), name="outbound-queue")
        if self.tls_reporter is not None:
            self.tls_task = asyncio.create_task(self.tls_reporter.run(), name="tls-reports")

    async def start_web(self) -> None:
        def sessions() -> list[str]:  # the listener of every open session, for /metrics
            return (
                [s.service for s in self.smtp.sessions]
                + [s.service for s in self.pop3.sessions]
                + [s.service for s in self.imap.sessions]
            )

        sockets = self.sockets | self.web_sockets
        self.web = build_web(
            self.config,
            self.storage,  # the admin pages' directory, queue and message files; /metrics
            self.metrics,
            sockets,
            self.tls_context,
            sessions,
            self.smtp.connections,  # one count for mail and web connections (web/admission.py)
            self.throttle,  # one budget of login failures for SMTP, POP3 and the admin pages
        )
        if self.web is not None:
            await self.web.start()

    async def stop_queue(self) -> None:
        if self.queue_runner is None or self.queue_task is None:
            return
        self.storage.intake.on_queued(None)
        await self.queue_runner.stop()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await self.queue_task
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("outbound queue stopped with an error")
        await self.stop_tls_reports()

    async def stop_tls_reports(self) -> None:
        """Stop the daily TLS-report task and write what it recorded since its last flush."""
        if self.tls_task is not None:
            self.tls_task.cancel()
            await asyncio.gather(self.tls_task, return_exceptions=True)
        if self.tls_reporter is not None:
            try:
                await self.tls_reporter.flush()
            except OSError:
                log.exception("TLS reports: cannot write the last sessions")

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

    # ------------------------------------------------------------------ reload (SIGHUP)

    def request_reload(self) -> None:
        if self.smtp.stopping:
            return
        if self.reload_task is not None and not self.reload_task.done():
            self.reload_again = True  # once more when this one is done: the file may be newer
            return
        self.reload_task = asyncio.create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        while True:
            self.reload_again = False
            try:
                await self.reload_once()
            except Exception:
                log.exception("reload failed; keeping the running configuration")
            if not self.reload_again or self.smtp.stopping:
                return

    async def reload_once(self) -> None:
        """Reopen the log file, then read and apply the configuration file (module docstring)."""
        try:
            logs.reopen()
        except OSError as exc:
            log.error(
                "log.file: cannot reopen %s: %s; still writing to the file opened before",
                logs.log_file_path(),
                exc.strerror or exc,
            )
        old = self.config
        path = old.path
        if path is None:
            log.warning("SIGHUP: no configuration file to reload")
            return
        new_sockets: dict[str, socket.socket] = {}
        try:
            read = await asyncio.to_thread(load_config, path)
            changes = reloading.changes(old, read)
            new = reloading.keep_restart_keys(old, read)
            tls_context = await asyncio.to_thread(ensure_tls, new)
            for service, address in new.listen.items():
                if old.listen.get(service) != address:
                    new_sockets[service] = bind_socket(service, address)
            if (new.log_file, new.log_format) != (old.log_file, old.log_format):
                try:
                    logs.setup_logging(new.log_level, new.log_file, new.log_format)
                except OSError as exc:
                    raise ConfigError(
                        f"log.file: cannot open {new.log_file}: {exc.strerror}"
                    ) from None
        except ConfigError as exc:
            for sock in new_sockets.values():
                sock.close()
            log.error("reload: %s; keeping the running configuration", exc)
            return
        await self.apply(new, tls_context, new_sockets)
        digest = file_digest(new.tls.cert)
        renewed = digest != self.cert_digest and not any(c.key == "tls.cert" for c in changes)
        self.cert_digest = digest
        if renewed:
            log.info("tls.cert: loaded the new certificate in %s", new.tls.cert)
        for change in changes:
            (log.warning if change.needs_restart else log.info)("reload: %s", change)
        count = len(changes) + renewed
        log.info("reloaded %s: %d change%s", path, count, "" if count == 1 else "s")

    async def apply(
        self, new: Config, tls_context: ssl.SSLContext, new_sockets: dict[str, socket.socket]
    ) -> None:
        """Swap in ``new``: from here on nothing can fail on the configuration's account."""
        old = self.config
        self.config = self.smtp.config = self.pop3.config = self.imap.config = new
        logging.getLogger("todoku").setLevel(new.log_level.upper())
        self.tls_context = self.smtp.tls_context = self.pop3.tls_context = tls_context
        self.imap.tls_context = tls_context
        if self.web is not None:
            self.web.tls_context = tls_context  # the next https connection has the new certificate
        self.settings = listener_settings(new)
        limits = self.smtp.connections
        if limits is not None and (
            (old.max_connections, old.max_connections_per_ip)
            != (new.max_connections, new.max_connections_per_ip)
        ):
            wanted = connection_limits(new, self.open_files)
            limits.max_connections = wanted.max_connections
            limits.max_per_client = wanted.max_per_client
        throttle = self.throttle
        throttle.delay_after = new.auth_fail_delay_after
        throttle.lockout_after = new.auth_lockout_after
        throttle.lockout_seconds = new.auth_lockout_seconds
        throttle.base_delay = new.auth_fail_delay
        if "smtp" not in new.listen:
            self.smtp.inbound = None
        elif self.smtp.inbound is None or old.policy != new.policy:
            self.smtp.inbound = inbound_policy(new)
        if self.queue_runner is not None:
            self.queue_runner.set_relays(new.relays)
        if old.deleted_retention != new.deleted_retention:
            self.start_purge()
        # Listeners: a removed or moved one stops accepting (its sessions go on), a new one opens.
        for service in list(self.sockets):
            if service not in new.listen or service in new_sockets:
                listener = self.servers.pop(service, None)
                if listener is not None:
                    listener.close()  # closes the listening socket; sessions are not touched
                self.sockets.pop(service).close()
                log.info("stopped listening for %s on %s", service, old.listen[service])
        for service, sock in new_sockets.items():
            self.sockets[service] = sock
            await self.open_listener(service)
        self.write_listeners_file()

    async def stop(self) -> None:
        self.smtp.stopping = True
        for server in self.servers.values():
            server.close()
        if self.web is not None:
            await self.web.stop()  # requests in flight get web/server.SHUTDOWN_GRACE
        if self.reload_task is not None:
            self.reload_task.cancel()
        if self.purge_task is not None:
            self.purge_task.cancel()
        # POP3 sessions idle at a command get -ERR and close without UPDATE: only a
        # client's own QUIT deletes anything (RFC 1939 §6).
        self.pop3.stopping = True
        for pop3_session in list(self.pop3.sessions):
            if pop3_session.waiting_for_command and pop3_session.task is not None:
                pop3_session.task.cancel()
        # IMAP sessions waiting for a command (IDLE included) get * BYE.
        self.imap.stopping = True
        for imap_session in list(self.imap.sessions):
            if imap_session.waiting_for_command and imap_session.task is not None:
                imap_session.task.cancel()
        for session in list(self.smtp.sessions):
            if session.waiting_for_command and session.task is not None:
                session.task.cancel()
        pending = [s.task for s in self.smtp.sessions if s.task is not None]
        pending += [s.task for s in self.pop3.sessions if s.task is not None]
        pending += [s.task for s in self.imap.sessions if s.task is not None]
        if self.purge_task is not None:
            pending.append(self.purge_task)
        if pending:
            _, still = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            for task in still:
                task.cancel()
        for server in self.servers.values():
            try:
                async with asyncio.timeout(5):
                    await server.wait_closed()
            except TimeoutError:
                pass
        await self.stop_queue()
        if self.outcomes_task is not None:
            self.outcomes_task.cancel()
        if self.metrics.daily is not None:
            await save_outcomes(self.metrics.daily)  # the queue's last results included
        await self.storage.close()  # closes self.store too
        try:
            (self.config.data_dir / "run" / "listeners.json").unlink()
        except OSError:
            pass
        log.info("stopped")


def listener_settings(config: Config) -> dict[str, ListenerSettings]:
    """The session settings of every configured listener."""
    settings: dict[str, ListenerSettings] = {}
    for service, address in config.listen.items():
        if service in SMTP_SERVICES:
            settings[service] = settings_for(service, config, address.is_loopback, tls_ready=True)
        elif service in IMAP_SERVICES:
            settings[service] = imap_settings_for(
                service, config, address.is_loopback, tls_ready=True
            )
        else:
            settings[service] = pop3_settings_for(
                service, config, address.is_loopback, tls_ready=True
            )
    return settings


async def open_storage(config: Config, *, migrate: bool = True) -> Storage:
    """The configured storage backend (``[store]``): the one place that chooses it.

    SQLite opens (and migrates, after keeping a copy of the index) the data directory. On
    PostgreSQL a node connects, applies any pending schema migration under the database's
    advisory lock when ``migrate`` (one node at a time; the others wait, then find nothing to
    do), and refuses a database at another schema version otherwise. A database that cannot be
    reached is an ``OSError``; a missing psycopg or an unreadable password file a
    ``ConfigError``."""
    store = config.store
    if store.backend != "postgresql":
        return SqliteBackend.open(config.data_dir, config.domains)
    try:
        from todoku.store.postgres.backend import PostgresBackend
    except ImportError:
        raise ConfigError(
            'store.backend: "postgresql" needs psycopg (pip install "todoku[postgresql]")'
        ) from None
    assert store.url is not None
    return await PostgresBackend.open(
        store.url,
        config.domains,
        password=store.read_password(),
        lease=store.lease,
        pool_size=store.pool_size,
        timeout=store.timeout,
        migrate=migrate,
    )


async def migrate_storage(config: Config) -> str:
    """``todoku store migrate``: bring the store's schema up to date; one line saying what."""
    store = config.store
    if store.backend != "postgresql":
        before = config.db_path.exists()
        SqliteStore(config.data_dir).close()  # opening migrates (a copy of the index first)
        return f"{config.db_path}: up to date" + ("" if before else " (created)")
    try:
        from todoku.store.postgres.backend import migrate_database
        from todoku.store.postgres.schema import SCHEMA_VERSION
    except ImportError:
        raise ConfigError(
            'store.backend: "postgresql" needs psycopg (pip install "todoku[postgresql]")'
        ) from None
    assert store.url is not None
    applied = await migrate_database(store.url, store.timeout, password=store.read_password())
    if not applied:
        return f"database schema at version {SCHEMA_VERSION}: nothing to do"
    done = ", ".join(f"{m.version} ({m.why})" for m in applied)
    return f"database schema at version {SCHEMA_VERSION}: applied {done}"


def build_server(config: Config) -> Server:
    """Everything that can fail on a bad configuration happens here, before anything listens.

    As root with ``user``: bind, read a configured TLS key, become the account (privileges.py),
    then open everything else as the account."""
    if config.store.backend != "sqlite":
        # SMTP, POP3 and the queue runner still work on the embedded store's synchronous
        # interface; until they move to the async ones (issue 14), a PostgreSQL node would
        # accept mail into SQLite. Better to say so than to serve half a cluster.
        raise ConfigError(
            'store.backend: "postgresql" is ready for "todoku store migrate" but not yet for'
            " serve (SMTP, POP3 and the queue still need the embedded store; issue 19)"
        )
    if not config.listen:
        raise ConfigError(
            'listen: no service configured (add smtp = "127.0.0.1:10025" under [listen])'
        )
    account = privileges.account_for(config)
    if account is not None:
        privileges.prepare_data_dir(config, account)
    else:
        check_data_dir(config)
    sockets: dict[str, socket.socket] = {}
    web_sockets: dict[str, socket.socket] = {}
    try:
        for service, address in config.listen.items():
            sockets[service] = bind_socket(service, address)
        for service, web_address in (("https", config.web.https), ("http", config.web.http)):
            if web_address is not None:
                web_sockets[service] = bind_socket(service, web_address)
        tls_context = None if config.tls.self_signed else ensure_tls(config)
        if account is not None:
            privileges.hand_over(config.log_file, account)
            privileges.drop(account)
            check_data_dir(config)  # now as the account: files in it that root made
        privileges.check_later_reads(config)
        if tls_context is None:
            tls_context = ensure_tls(config)  # self-signed: made in data_dir by its owner
        store = open_store(config, server_start=True)
    except ConfigError:
        for sock in [*sockets.values(), *web_sockets.values()]:
            sock.close()
        raise
    backend = SqliteBackend(store, config.domains)
    backend.sweep()  # content whose writer never finished (a crash)
    open_files = raise_open_file_limit()
    connections = connection_limits(config, open_files)
    throttle = AuthThrottle(
        delay_after=config.auth_fail_delay_after,
        lockout_after=config.auth_lockout_after,
        lockout_seconds=config.auth_lockout_seconds,
        base_delay=config.auth_fail_delay,
    )
    daily = DailyOutcomes(config.data_dir / "web" / "outcomes.json")
    daily.load()  # a small file, read once before anything is served
    metrics = Metrics(daily)
    smtp = SmtpContext(
        config=config,
        blobs=backend.blobs,
        intake=backend.intake,
        directory=Directory(backend.directory, config.domains),
        throttle=throttle,
        tls_context=tls_context,
        connections=connections,
        metrics=metrics,
    )
    if "smtp" in sockets:
        smtp.inbound = inbound_policy(config)  # [policy] checks on the MX only
    pop3 = Pop3Context(
        config=config,
        store=store,
        directory=backend.directory,
        blobs=backend.blobs,
        throttle=throttle,
        tls_context=tls_context,
        connections=connections,
        metrics=metrics,
    )
    return Server(
        config=config,
        store=store,
        storage=backend,
        tls_context=tls_context,
        smtp=smtp,
        pop3=pop3,
        throttle=throttle,
        sockets=sockets,
        settings=listener_settings(config),
        open_files=open_files,
        cert_digest=file_digest(config.tls.cert),
        metrics=metrics,
        web_sockets=web_sockets,
    )


async def serve(config: Config, ready: Callable[[Server], None] | None = None) -> None:
    try:
        logs.setup_logging(config.log_level, config.log_file, config.log_format)
    except OSError as exc:
        raise ConfigError(f"log.file: cannot open {config.log_file}: {exc.strerror}") from None
    server = build_server(config)
    await server.start()
    if ready is not None:
        ready(server)
    try:
        await asyncio.to_thread(prepare_dkim_keys, config)  # first start: DKIM keys per domain
        await server.stopped.wait()
    finally:
        await server.stop()
