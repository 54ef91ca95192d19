"""Schema migrations on PostgreSQL: versioned, applied once, by one node at a time (issue 19)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from tests.pgcluster import PgCluster
from tests.store.contract.conftest import DOMAINS
from todoku.store.postgres import schema
from todoku.store.postgres.backend import PostgresBackend, migrate_database


@pytest.fixture
def empty_url(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.new_database(template="template0")
    yield url
    pg_cluster.drop_database(url)


async def _versions(url: str) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version, why FROM schema_version ORDER BY version")
        return [(row[0], row[1]) for row in await cur.fetchall()]


async def test_nodes_starting_together_migrate_an_empty_database_once(empty_url: str) -> None:
    applied = await asyncio.gather(*(migrate_database(empty_url) for _ in range(4)))
    # One of them did the work under the advisory lock; the others found nothing to do.
    assert sorted(len(a) for a in applied) == [0, 0, 0, len(schema.MIGRATIONS)]
    assert await _versions(empty_url) == [(m.version, m.why) for m in schema.MIGRATIONS]
    assert await migrate_database(empty_url) == []


async def test_a_node_refuses_a_database_it_has_not_migrated(empty_url: str) -> None:
    with pytest.raises(schema.NewerSchema, match="todoku store migrate"):
        await PostgresBackend.open(empty_url, DOMAINS, migrate=False)
    backend = await PostgresBackend.open(empty_url, DOMAINS)  # migrates, then works
    try:
        await backend.directory.add_user("a@example.test", "h")
        assert [u.address for u in await backend.directory.users()] == ["a@example.test"]
    finally:
        await backend.close()


async def test_a_database_from_a_newer_todoku_is_refused(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO schema_version (version, why) VALUES (%s, 'from the future')",
            (schema.SCHEMA_VERSION + 1,),
        )
    with pytest.raises(schema.NewerSchema, match="newer than this todoku"):
        await migrate_database(pg_url)
    with pytest.raises(schema.NewerSchema):
        await PostgresBackend.open(pg_url, DOMAINS, migrate=False)


async def test_an_unreachable_database_is_an_os_error(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("no_such_database")
    with pytest.raises(OSError, match="database unavailable"):
        await PostgresBackend.open(url, DOMAINS, timeout=2)
