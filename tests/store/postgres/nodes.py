"""A stand-in for a node's outbound runner, on the ``Queue`` interface alone (issue 19 tests).

``deliver_due`` does what the runner does with each due entry, in the same order: claim it
(``begin_attempt``), read it, "send" to each pending recipient (append to a record of what the
remote received), commit each result (``record_results``) and retire it. ``python -m
tests.store.postgres.nodes URL RECORD`` runs it as a separate process (a node to kill -9): it
claims every due entry, sends to the first pending recipient of each, then writes ``claimed``
on stdout and waits to be killed with the rest undone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from todoku.store.api import RecipientResult
from todoku.store.queue import Queue


def delivered(address: str) -> RecipientResult:
    return RecipientResult(
        address, "delivered", "data", 250, "2.0.0", "ok", "mx.test", "", "2.0.0", "remote.test"
    )


def send(record: Path, node: str, queue_id: str, address: str) -> None:
    """What the fake remote received: one line per recipient per message, appended at once."""
    with record.open("a") as out:
        out.write(f"{queue_id} {address} {node}\n")


async def deliver(
    queue: Queue,
    node: str,
    record: Path,
    queue_id: str,
    *,
    only_first: bool = False,
    retry_in: float = 600.0,
) -> bool:
    """One attempt at one entry; False when another node holds it. A node that dies during
    the attempt leaves the entry to be tried again ``retry_in`` seconds after it began (and not
    before its lease ran out)."""
    now = time.time()
    if not await queue.begin_attempt(queue_id, now, now + retry_in):
        return False
    entry = await queue.get(queue_id)
    if entry is None:
        return True
    pending = [r.address for r in entry.recipients if r.state == "pending"]
    for address in pending[:1] if only_first else pending:
        send(record, node, queue_id, address)
        await asyncio.sleep(0)  # let the other node's tasks in between
        await queue.record_results(queue_id, [delivered(address)], time.time())
    if only_first:
        return True
    # Reports owed for every final recipient (also those another node delivered) are "stored".
    await queue.mark_reported(queue_id, [r.address for r in entry.recipients], retire=True)
    return True


async def deliver_due(queue: Queue, node: str, record: Path) -> int:
    """Every entry due now, concurrently; how many this node took."""
    now = time.time()
    due = [d.queue_id for d in await queue.due() if d.next_attempt <= now]
    taken = await asyncio.gather(*(deliver(queue, node, record, q) for q in due))
    return sum(taken)


async def _half_and_wait(url: str, record: Path) -> None:
    from todoku.store.postgres.backend import PostgresBackend

    backend = await PostgresBackend.open(url, ("example.test",), lease=1.0, migrate=False)
    due = [d.queue_id for d in await backend.queue.due()]
    for queue_id in due:
        await deliver(backend.queue, "victim", record, queue_id, only_first=True, retry_in=0.5)
    print("claimed", len(due), flush=True)
    await asyncio.sleep(3600)  # until kill -9


if __name__ == "__main__":
    asyncio.run(_half_and_wait(sys.argv[1], Path(sys.argv[2])))
