"""A PostgreSQL cluster for the store's tests, started once per test session (tests/pgcluster.py)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, Unavailable


def _migrate(url: str) -> None:
    from todoku.store.postgres.backend import migrate_database

    failure: list[BaseException] = []

    def run() -> None:  # its own thread: the caller may be inside a running event loop
        try:
            asyncio.run(migrate_database(url))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The cluster, with ``todoku_template`` migrated; skipped (failed under CI) when PostgreSQL
    cannot be started here."""
    try:
        cluster = PgCluster.start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    try:
        cluster.execute(f"CREATE DATABASE {cluster.template}")
        _migrate(cluster.url(cluster.template))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database of this test's own, already migrated."""
    url = pg_cluster.new_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)
