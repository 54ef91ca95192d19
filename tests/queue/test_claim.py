"""``Queue.begin_attempt`` is the claim (store/queue.py): when it answers 0 (another node that
shares the queue holds the entry's lease) the runner leaves the entry alone and looks again at
the attempt's planned time. The other node is a stand-in here (what cannot be real in one
process); the PostgreSQL backend's own tests run two real nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.queue.test_runner_clock import SCHEDULE, Rig
from todoku.outcome import Outcome, Verdict
from todoku.queue.model import Hop
from todoku.queue.transport import OutboundMessage


class ClaimedElsewhere:
    """The queue as this node sees it while another node holds every entry's lease."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.claimed = True
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def begin_attempt(self, queue_id: str, started_at: float, next_attempt: float) -> int:
        if self.claimed:
            self.refused += 1
            return 0
        return int(await self.inner.begin_attempt(queue_id, started_at, next_attempt))


class Parts:
    def __init__(self, backend: Any, queue: ClaimedElsewhere) -> None:
        self.directory = backend.directory
        self.blobs = backend.blobs
        self.intake = backend.intake
        self.mailboxes = backend.mailboxes
        self.queue = queue


async def test_an_entry_claimed_by_another_node_is_left_alone_until_planned(
    tmp_path: Path,
) -> None:
    sent: list[str] = []

    def accept(hop: Hop, message: OutboundMessage | None) -> list[Outcome] | None:
        if message is None:
            return None
        sent.extend(r for r, _, _ in message.recipients)
        return [
            Outcome(r, Verdict.DELIVERED, "end-of-data", 250, "2.0.0", "ok", "mx.remote.test")
            for r, _, _ in message.recipients
        ]

    rig = Rig(tmp_path, accept)
    queue = ClaimedElsewhere(rig.backend.queue)
    from todoku.queue.runner import QueueRunner

    rig.runner = QueueRunner(
        Parts(rig.backend, queue),  # type: ignore[arg-type]
        rig.runner.deliveries.resolver,
        rig.runner.deliveries.transport,
        rig.runner.settings,
        is_self=lambda host, ip: False,
        local_mailboxes=rig.runner.reports.local_mailboxes,
        clock=rig.clock,
    )
    loop = asyncio.get_running_loop()
    rig.store.on_queued = lambda items: loop.call_soon_threadsafe(rig.runner.enqueue, items)
    task = asyncio.create_task(rig.runner.run())
    try:
        queue_id = await rig.submit("bob@remote.test")
        await rig.settle()
        assert queue.refused == 1 and sent == []
        entry = rig.store.get_queue_entry(queue_id)
        assert entry is not None and entry.attempts == 0  # nothing written by this node
        await rig.advance(SCHEDULE.retry[0] - 1)
        assert queue.refused == 1  # not in a loop: only at the planned time
        queue.claimed = False  # the other node gave the entry back undelivered
        await rig.advance(1)
        assert sent == ["bob@remote.test"]
        assert rig.store.get_queue_entry(queue_id) is None
    finally:
        await rig.runner.stop()
        await asyncio.wait([task], timeout=10)
        rig.store.close()
