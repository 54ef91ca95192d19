"""An outbound queue assembled from real parts for tests: SQLite store in a temporary directory,
the loopback DNS server, the real SMTP transport (to the fake MX servers), the real runner."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from todoku.config.relay import RelayConfig
from todoku.dns.dnspython import DnspythonResolver
from todoku.net.smtp_client import Timeouts, opportunistic_tls_context
from todoku.queue.dane import Dane
from todoku.queue.mtasts import MtaSts
from todoku.queue.runner import QueueRunner, RunnerSettings
from todoku.queue.schedule import Clock, Schedule
from todoku.queue.transport import RelayTransport, SmtpTransport, TlsObserver
from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend

LOCAL_DOMAINS = ("example.test",)
HOSTNAME = "mx.example.test"
TEST_TIMEOUTS = Timeouts(connect=3, greeting=2, command=3, data_block=3, end_of_data=3)


@dataclass
class Queue:
    store: SqliteStore
    runner: QueueRunner
    task: asyncio.Task[None]
    backend: SqliteBackend  # the interfaces over ``store``, as the server has them

    async def submit(
        self,
        recipients: list[str | RemoteRecipient],
        *,
        sender: str = "alice@example.test",
        body: bytes = b"Subject: test\r\nFrom: alice@example.test\r\n\r\nhello\r\n",
        envid: str | None = None,
        ret: str | None = None,
        received_at: float | None = None,
    ) -> str:
        writer = self.store.new_blob()
        writer.write(body)
        blob = await asyncio.to_thread(writer.finish)
        remote = tuple(
            r if isinstance(r, RemoteRecipient) else RemoteRecipient(r) for r in recipients
        )
        return await self.store.commit(
            IncomingMessage(
                blob=blob,
                sender=sender,
                remote=remote,
                envid=envid,
                ret=ret,
                received_at=received_at or time.time(),
                subject="test",
            )
        )

    def mailbox(self, address: str) -> list[bytes]:
        out = []
        for message in self.store.list_messages(address):
            with self.store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out

    async def wait(self, predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; queue: {self.store.list_queue()}")

    async def quiet(self, now: float, timeout: float = 60.0) -> None:
        """Wait until the runner has done what is due at ``now`` (virtual time): nothing in
        flight and every entry left waiting for a later time. The deadline only ends a hung
        test; how long the work takes does not decide anything."""

        def done() -> bool:
            waiting = all(e.next_attempt > now or e.held for e in self.store.list_queue())
            return waiting and self.runner.idle.is_set() and not self.runner.busy

        await self.wait(done, timeout)


@contextlib.asynccontextmanager
async def running_queue(
    data_dir: Path,
    nameserver: str,
    port: int,
    *,
    retry: tuple[float, ...] = (1.0,),
    delay_warning: float = 0.0,
    max_lifetime: float = 60.0,
    max_connections: int = 10,
    lang: str = "en",
    timeouts: Timeouts = TEST_TIMEOUTS,
    self_addresses: tuple[str, ...] = ("127.0.0.1",),
    tls: bool = True,
    relays: tuple[RelayConfig, ...] = (),
    mta_sts: MtaSts | None = None,
    verified_context: ssl.SSLContext | None = None,
    dnssec: bool = False,
    clock: Clock | None = None,
    tls_observer: TlsObserver | None = None,
) -> AsyncIterator[Queue]:
    store = SqliteStore(data_dir)
    backend = SqliteBackend(store, LOCAL_DOMAINS)
    settings = RunnerSettings(
        hostname=HOSTNAME,
        lang=lang,
        schedule=Schedule(retry, delay_warning, max_lifetime),
        max_connections_per_domain=max_connections,
        wake_path=data_dir / "run" / "queue.wake",
        wake_poll=0.2,
    )

    async def local_mailboxes(address: str) -> tuple[str, ...] | None:
        domain = address.rpartition("@")[2].lower()
        return (address.lower(),) if domain in LOCAL_DOMAINS else None

    resolver = DnspythonResolver((nameserver,), lifetime=2.0, dnssec=dnssec)
    runner = QueueRunner(
        backend,
        resolver,
        SmtpTransport(
            HOSTNAME,
            port,
            opportunistic_tls_context() if tls else None,
            timeouts,
            verified_context,
            tls_observer,
        ),
        settings,
        is_self=lambda host, ip: host == HOSTNAME or ip in self_addresses,
        local_mailboxes=local_mailboxes,
        relays=relays,
        relay_transport=lambda relay: RelayTransport(relay, HOSTNAME, timeouts),
        mta_sts=mta_sts,
        dane=Dane(resolver) if dnssec else None,
        clock=clock,
    )
    loop = asyncio.get_running_loop()
    store.on_queued = lambda items: loop.call_soon_threadsafe(runner.enqueue, items)
    task = asyncio.create_task(runner.run())
    try:
        yield Queue(store, runner, task, backend)
    finally:
        await runner.stop()
        try:
            async with asyncio.timeout(10):
                await task
        except (asyncio.CancelledError, TimeoutError):
            pass
        await backend.close()
