"""The runner in virtual time: FakeClock, DNS tables (MockResolver), a scripted MockTransport.
Nothing waits for real time; the test moves the clock and pokes the runner."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.queue.reports import parse_report
from todoku.dns.mock import MockResolver
from todoku.outcome import Outcome, Verdict
from todoku.queue.model import Hop
from todoku.queue.runner import QueueRunner, RunnerSettings
from todoku.queue.schedule import FakeClock, Schedule
from todoku.queue.transport import MockTransport, OutboundMessage
from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend

HOUR = 3600.0
SCHEDULE = Schedule(retry=(300.0, HOUR), delay_warning=4 * HOUR, max_lifetime=24 * HOUR)
RESOLVER = MockResolver(
    mx_records={"remote.test": [(10, "mx.remote.test")]}, hosts={"mx.remote.test": ["192.0.2.1"]}
)
Handler = Callable[[Hop, OutboundMessage | None], list[Outcome] | Outcome | None]


async def example_mailboxes(address: str) -> tuple[str, ...] | None:
    """Reports to @example.test go to that mailbox; anything else is queued."""
    return (address,) if address.endswith("@example.test") else None


class Rig:
    def __init__(self, tmp_path: Path, handler: Handler) -> None:
        self.clock = FakeClock(1_000_000.0)
        self.store = SqliteStore(tmp_path)
        self.backend = SqliteBackend(self.store, ("example.test",))
        self.runner = QueueRunner(
            self.backend,
            RESOLVER,
            MockTransport(handler),
            RunnerSettings("mx.example.test", "en", SCHEDULE),
            is_self=lambda host, ip: False,
            local_mailboxes=example_mailboxes,
            clock=self.clock,
        )

    async def submit(self, *recipients: str) -> str:
        writer = self.store.new_blob()
        writer.write(b"Subject: virtual\r\n\r\nbody\r\n")
        blob = await asyncio.to_thread(writer.finish)
        return await self.store.commit(
            IncomingMessage(
                blob=blob,
                sender="alice@example.test",
                received_at=self.clock.now(),
                remote=tuple(RemoteRecipient(r) for r in recipients),
            )
        )

    async def settle(self) -> None:
        """Let the runner finish what is due now (yields to the loop; no clock involved)."""
        for _ in range(500):
            await asyncio.sleep(0.01)
            if self.runner.idle.is_set() and not self.runner.busy:
                await asyncio.sleep(0.02)
                if self.runner.idle.is_set():
                    return
        raise AssertionError("runner did not settle")

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.runner.poke()
        await asyncio.sleep(0.01)
        await self.settle()

    def mailbox(self) -> list[bytes]:
        out = []
        for message in self.store.list_messages("alice@example.test"):
            with self.store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Rig]]:
    rigs: list[tuple[Rig, asyncio.Task[None]]] = []

    def make(handler: Handler) -> Rig:
        rig = Rig(tmp_path, handler)
        loop = asyncio.get_running_loop()
        rig.store.on_queued = lambda items: loop.call_soon_threadsafe(rig.runner.enqueue, items)
        rigs.append((rig, asyncio.create_task(rig.runner.run())))
        return rig

    yield make
    for rig, task in rigs:
        await rig.runner.stop()
        await asyncio.wait([task], timeout=10)
        rig.store.close()


async def test_retries_warning_and_expiry_follow_the_schedule_in_virtual_time(rig_factory) -> None:  # type: ignore[no-untyped-def]
    tries: list[float] = []

    def greylisting_forever(hop: Hop, message: OutboundMessage | None) -> list[Outcome] | None:
        if message is None:
            return None
        tries.append(rig.clock.now())
        return [
            Outcome(
                r,
                Verdict.TEMPORARY,
                "rcpt",
                451,
                "4.3.0",
                "Try again later",
                "mx.remote.test [192.0.2.1]",
            )
            for r, _, _ in message.recipients
        ]

    rig = rig_factory(greylisting_forever)
    start = rig.clock.now()
    queue_id = await rig.submit("bob@remote.test")
    await rig.settle()
    assert tries == [start]
    [entry] = rig.store.list_queue()
    assert entry.next_attempt == start + 300  # retry[0]
    await rig.advance(299)
    assert len(tries) == 1
    await rig.advance(1)
    assert tries[-1] == start + 300
    assert rig.store.get_queue_entry(queue_id).next_attempt == start + 300 + HOUR  # type: ignore[union-attr]
    # Hourly from here (the last value repeats) until the delay warning at 4 h.
    while rig.clock.now() < start + 4 * HOUR:
        await rig.advance(min(HOUR / 2, start + 4 * HOUR - rig.clock.now()))
    [warning] = rig.mailbox()
    delay = parse_report(warning)
    assert delay.subject == "Warning: could not send message for past 4 hours"
    assert "will keep trying until the message is 1 day old" in delay.human
    assert delay.recipients[0]["Diagnostic-Code"] == "smtp; 451 4.3.0 Try again later"
    count_at_warning = len(tries)
    assert count_at_warning == 5  # 0, 5 min, then hourly: 1:05, 2:05, 3:05
    while rig.clock.now() < start + 24 * HOUR:
        await rig.advance(HOUR)
    assert rig.store.list_queue() == []
    assert len(rig.mailbox()) == 2  # one warning, one final bounce
    final = parse_report(rig.mailbox()[1])
    assert final.recipients[0]["Status"] == "4.4.7"
    assert final.recipients[0]["Action"] == "failed"
    assert final.recipients[0]["Diagnostic-Code"] == "smtp; 451 4.3.0 Try again later"
    assert all(b - a >= 300 for a, b in itertools.pairwise(tries))


async def test_repeated_policy_block_stops_early(rig_factory) -> None:  # type: ignore[no-untyped-def]
    def policy_block(hop: Hop, message: OutboundMessage | None) -> list[Outcome] | None:
        if message is None:
            return None
        text = "Relay access denied"
        return [
            Outcome(r, Verdict.TEMPORARY, "rcpt", 454, "4.7.1", text, "mx.remote.test [192.0.2.1]")
            for r, _, _ in message.recipients
        ]

    rig = rig_factory(policy_block)
    await rig.submit("bob@remote.test")
    await rig.settle()
    for _ in range(3):
        await rig.advance(HOUR)
    assert rig.store.list_queue() == []
    [bounce] = rig.mailbox()
    recipient = parse_report(bounce).recipients[0]
    assert recipient["Action"] == "failed"
    assert (
        "given up after 3 attempts" in recipient["Diagnostic-Code"]
        or "4.7.1" in recipient["Status"]
    )
