"""PostgreSQL restarted under load (issue 19): while it is away every accept fails with an
``OSError`` (SMTP answers 451 4.3.0, the client sends again), nothing acknowledged is lost, and
the node carries on by itself once the database is back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, Unavailable
from tests.store.contract.conftest import DOMAINS
from tests.store.contract.test_queue_contract import accept
from todoku.store.postgres.backend import PostgresBackend, migrate_database


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of this test's own: it is stopped and started under the test's feet."""
    try:
        cluster = PgCluster.start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_accepts_fail_while_the_database_is_away_and_resume_after(
    own_cluster: PgCluster,
) -> None:
    own_cluster.execute("CREATE DATABASE todoku")
    url = own_cluster.url("todoku")
    await migrate_database(url)
    node = await PostgresBackend.open(url, DOMAINS, pool_size=4, timeout=2.0)
    acknowledged: list[str] = []
    refused = 0
    stop = asyncio.Event()

    async def sender() -> None:
        nonlocal refused
        while not stop.is_set():
            try:
                acknowledged.append(await accept(node))
            except OSError:
                refused += 1  # the session's 451: the client keeps it and sends again
                await asyncio.sleep(0.05)

    try:
        senders = [asyncio.ensure_future(sender()) for _ in range(4)]
        while len(acknowledged) < 20:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(own_cluster.server_stop)
        before = len(acknowledged)
        while refused < 8:  # every sender meets the outage
            await asyncio.sleep(0.05)
        assert len(acknowledged) <= before + 4  # at most the commits already under way
        await asyncio.to_thread(own_cluster.server_start)
        after_restart = len(acknowledged)
        while len(acknowledged) < after_restart + 20:  # the pool reconnected by itself
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*senders)
        await node.queue.drain()
        stored = {e.id for e in await node.queue.entries()}
        assert set(acknowledged) <= stored  # every acknowledged message is there
        assert len(acknowledged) == len(set(acknowledged))
    finally:
        stop.set()
        await node.close()
