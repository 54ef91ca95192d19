"""Several nodes on one PostgreSQL database (issue 19): each test opens two backends (two nodes)
on the same database, or runs a second node as a process of its own and kills it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.store.contract.conftest import DOMAINS
from tests.store.contract.test_queue_contract import CAROL, DAVE, accept
from tests.store.postgres.nodes import deliver, deliver_due
from todoku.store.mailboxes import INBOX, ChangeKind, StoreMode
from todoku.store.postgres.backend import PostgresBackend

ROOT = Path(__file__).resolve().parents[3]
USER = "alice@example.test"


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[PostgresBackend, PostgresBackend]]:
    a = await PostgresBackend.open(pg_url, DOMAINS, node="a", lease=30, migrate=False)
    b = await PostgresBackend.open(pg_url, DOMAINS, node="b", lease=30, migrate=False)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def received(record: Path) -> list[tuple[str, str]]:
    """(queue id, recipient) of every send the fake remote saw."""
    if not record.exists():
        return []
    return [(q, r) for q, r, _ in (line.split() for line in record.read_text().splitlines())]


async def wait_for(condition: object, timeout: float = 20.0) -> None:
    """Poll an async predicate: for what only the database's clock decides (lease expiry)."""
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------- change feed


async def test_mail_accepted_on_one_node_wakes_an_idle_waiter_on_another(
    nodes: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = nodes
    since = await b.mailboxes.highest_modseq(USER)
    waiting = asyncio.ensure_future(b.mailboxes.wait_changes(USER, since, timeout=30))
    await asyncio.sleep(0.2)  # b's waiter is registered
    queue_id = await accept(a, remote=(), mailboxes=(USER,))
    started = time.monotonic()
    changes = await waiting
    assert time.monotonic() - started < 10  # woken by the notification, not by the timeout
    # The change itself (not a RESYNC): it came with the notification.
    assert [(c.kind, c.folder, c.uids) for c in changes] == [(ChangeKind.EXISTS, INBOX, (1,))]
    [message] = await b.mailboxes.messages(USER, INBOX)
    assert message.blob_id == queue_id
    with await b.blobs.open(message.blob_id) as handle:
        assert handle.read().startswith(b"Subject: queued")


async def test_a_flag_change_on_one_node_reaches_the_other_with_its_uids(
    nodes: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = nodes
    await accept(a, remote=(), mailboxes=(USER,))
    await accept(b, remote=(), mailboxes=(USER,))
    since = await b.mailboxes.highest_modseq(USER)
    waiting = asyncio.ensure_future(b.mailboxes.wait_changes(USER, since, timeout=30))
    await asyncio.sleep(0.2)
    stored = await a.mailboxes.store_flags(USER, INBOX, [1, 2], StoreMode.ADD, ["\\Seen"])
    changes = await waiting
    assert [(c.kind, c.uids, c.modseq) for c in changes] == [
        (ChangeKind.FLAGS, (1, 2), stored.changed[0].modseq)
    ]
    assert [m.flags for m in await b.mailboxes.messages(USER, INBOX)] == [{"\\Seen"}] * 2


async def test_new_queue_entries_are_heard_by_the_other_node(
    nodes: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = nodes
    heard: list[tuple[str, float]] = []
    event = asyncio.Event()

    def listener(items: list[tuple[str, float]]) -> None:
        heard.extend(items)
        event.set()

    b.intake.on_queued(listener)
    queue_id = await accept(a, received_at=1234.0)
    await asyncio.wait_for(event.wait(), 10)
    assert heard == [(queue_id, 1234.0)]
    # A flush on one node makes the entry due on the others too.
    event.clear()
    await a.queue.flush(queue_id, None, 5000.0)
    await asyncio.wait_for(event.wait(), 10)
    assert heard[-1] == (queue_id, 5000.0)


# ---------------------------------------------------------------------------- leases


async def test_one_entry_is_claimed_by_one_node_at_a_time(
    nodes: tuple[PostgresBackend, PostgresBackend],
) -> None:
    a, b = nodes
    queue_id = await accept(a)
    numbers = await asyncio.gather(
        a.queue.begin_attempt(queue_id, 1001.0, 1300.0),
        b.queue.begin_attempt(queue_id, 1001.0, 1300.0),
    )
    assert sorted(numbers) == [0, 1]
    holder, other = (a, b) if numbers[0] else (b, a)
    # The other node sees the entry due no earlier than the lease's end.
    [due] = await other.queue.due()
    assert due.next_attempt > time.time() + 20
    [own] = await holder.queue.due()
    assert own.next_attempt == 1300.0
    assert await other.queue.begin_attempt(queue_id, 1002.0, 1400.0) == 0
    await holder.queue.end_attempt(queue_id, 1500.0, "later")  # gives the lease back
    assert await other.queue.begin_attempt(queue_id, 1501.0, 1800.0) == 2


async def test_two_nodes_draining_one_queue_send_to_each_recipient_once(
    nodes: tuple[PostgresBackend, PostgresBackend], tmp_path: Path
) -> None:
    a, b = nodes
    record = tmp_path / "received"
    ids = [await accept(a if n % 2 else b, remote=(CAROL, DAVE)) for n in range(40)]
    taken = await asyncio.gather(
        deliver_due(a.queue, "a", record), deliver_due(b.queue, "b", record)
    )
    assert sum(taken) == 40  # every entry taken by exactly one of them
    sends = Counter(received(record))
    assert set(sends) == {(q, r) for q in ids for r in (CAROL, DAVE)}
    assert set(sends.values()) == {1}
    assert await a.queue.entries() == []


async def test_a_node_killed_mid_delivery_loses_its_leases_and_the_other_finishes(
    pg_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "received"
    survivor = await PostgresBackend.open(pg_url, DOMAINS, node="survivor", migrate=False)
    try:
        ids = [await accept(survivor, remote=(CAROL, DAVE)) for _ in range(5)]
        victim = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.store.postgres.nodes", pg_url, str(record)),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert victim.stdout is not None
            line = await asyncio.wait_for(victim.stdout.readline(), 60)
            assert line.split() == [b"claimed", b"5"]
            # It sent to carol (the first pending) of each, recorded it, and holds the leases.
            assert sorted(received(record)) == sorted((q, CAROL) for q in ids)
            assert [await deliver(survivor.queue, "survivor", record, q) for q in ids] == [
                False
            ] * 5
        finally:
            victim.send_signal(signal.SIGKILL)  # kill -9: no clean-up of any kind
            await victim.wait()

        async def leases_ran_out() -> bool:
            # The victim's leases (1 s) are no longer renewed: due() shows them due again.
            return all(d.next_attempt <= time.time() for d in await survivor.queue.due())

        await wait_for(leases_ran_out)
        assert await deliver_due(survivor.queue, "survivor", record) == 5
        sends = Counter(received(record))
        assert set(sends) == {(q, r) for q in ids for r in (CAROL, DAVE)}
        assert set(sends.values()) == {1}  # carol was not sent again
        assert await survivor.queue.entries() == []
    finally:
        await survivor.close()
