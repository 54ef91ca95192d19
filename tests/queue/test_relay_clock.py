"""A refused relay login in virtual time (issue 15): the runner keeps the mail, retries on the
ordinary schedule past the early stop for policy blocks, and only the final expiry report goes
to the sender, saying that the relay refused our login. FakeClock, MockResolver, MockTransport."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.queue.reports import parse_report
from tests.queue.test_runner_clock import SCHEDULE, Rig, example_mailboxes
from todoku.config.relay import RelayConfig
from todoku.dns.mock import MockResolver
from todoku.outcome import Outcome, Verdict
from todoku.queue.model import Hop
from todoku.queue.runner import QueueRunner, RunnerSettings
from todoku.queue.transport import MockTransport, OutboundMessage, relay_login_failure

HOUR = 3600.0
RELAY = RelayConfig(0, ("*",), "relay.provider.test", 587, "starttls", "me", Path("/nonexistent"))
RESOLVER = MockResolver(hosts={"relay.provider.test": ["192.0.2.9"]})


async def test_refused_login_defers_until_expiry_and_the_report_says_so(tmp_path: Path) -> None:
    hops: list[Hop] = []

    def refusing(hop: Hop, message: OutboundMessage | None) -> list[Outcome] | Outcome | None:
        hops.append(hop)
        detail = f"{hop.host} [{hop.ip}] refused the login as me: 535 5.7.8 Bad credentials"
        return relay_login_failure(RELAY, detail, f"{hop.host} [{hop.ip}]")

    rig = Rig(tmp_path, refusing)
    rig.runner = QueueRunner(
        rig.backend,
        RESOLVER,
        MockTransport(refusing),
        RunnerSettings("mx.example.test", "en", SCHEDULE),
        is_self=lambda host, ip: False,
        local_mailboxes=example_mailboxes,
        clock=rig.clock,
        relays=(RELAY,),
    )
    loop = asyncio.get_running_loop()

    def queued(items: list[tuple[str, float]]) -> None:
        loop.call_soon_threadsafe(rig.runner.enqueue, items)

    rig.store.on_queued = queued
    task = asyncio.create_task(rig.runner.run())
    try:
        start = rig.clock.now()
        await rig.submit("bob@remote.test")
        await rig.settle()
        while rig.clock.now() + HOUR / 2 < start + 4 * HOUR:  # up to the delay warning
            await rig.advance(HOUR / 2)
        [entry] = rig.store.list_queue()
        assert entry.attempts >= 5  # past STOP_EARLY_AFTER: still temporary
        assert entry.recipients[0].state == "pending" and entry.recipients[0].phase == "auth"
        assert rig.mailbox() == []
        while rig.clock.now() < start + 24 * HOUR:
            await rig.advance(HOUR)
        assert rig.store.list_queue() == []
    finally:
        await rig.runner.stop()
        await asyncio.wait([task], timeout=10)
        rig.store.close()
    assert {h.host for h in hops} == {"relay.provider.test"}  # never the MX
    warning, final = (parse_report(m) for m in rig.mailbox())
    assert warning.subject.startswith("Warning")
    [recipient] = final.recipients
    assert recipient["Action"] == "failed" and recipient["Status"] == "4.4.7"
    human = " ".join(final.human.split())
    assert "refused the login as me: 535 5.7.8 Bad credentials" in human
    assert "configuration problem on this server" in human
    assert Verdict.TEMPORARY is relay_login_failure(RELAY, "x").verdict
