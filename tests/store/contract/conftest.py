"""Backends for the contract suites: every implementation runs the same tests.

``backend`` (Mailboxes): the implementation and a way to store content first (``put``), as the
IMAP APPEND path does with the blob store before it calls ``Mailboxes.append``.

``storage`` (Directory, Queue, Blobs, Intake): one backend's ``Storage`` on a fresh, empty store;
the tests use only the interfaces. A new backend adds a branch to ``open_storage`` (skipping
when its server is not available here) and its name to ``STORAGE_BACKENDS``, and must pass
every suite unchanged.

PostgreSQL: a private cluster per test session and a database per test (``tests/store/conftest``
and ``tests/pgcluster.py``), started only when a PostgreSQL test runs; skipped where PostgreSQL
is not installed, a failure under CI (``.ci/run`` installs it)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from todoku.store.backend import Storage
from todoku.store.mailboxes import BlobRef, Mailboxes
from todoku.store.memory_mailboxes import MemoryMailboxes
from todoku.store.sqlite_backend import SqliteBackend


@dataclass
class Backend:
    mailboxes: Mailboxes
    put: Callable[[bytes], Awaitable[BlobRef]]


async def _memory_put(data: bytes) -> BlobRef:
    blob_id = secrets.token_hex(8).upper()
    return BlobRef(blob_id, len(data), hashlib.sha256(data).hexdigest())


async def _memory(tmp_path: Path) -> AsyncIterator[Backend]:
    yield Backend(MemoryMailboxes(), _memory_put)


async def _sqlite(tmp_path: Path) -> AsyncIterator[Backend]:
    storage = SqliteBackend.open(tmp_path / "data", DOMAINS)

    async def put(data: bytes) -> BlobRef:
        # As IMAP APPEND stores content: written, fsynced and published in the blob store.
        writer = storage.blobs.new_writer()
        writer.write(data)
        blob = await writer.finish()
        await storage.blobs.publish([blob])
        return BlobRef(blob.blob_id, blob.size, blob.sha256)

    try:
        yield Backend(storage.mailboxes, put)
    finally:
        await storage.close()


BACKENDS: dict[str, Callable[[Path], AsyncIterator[Backend]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


async def _postgresql(url: str) -> AsyncIterator[Backend]:
    from todoku.store.postgres.backend import PostgresBackend

    storage = await PostgresBackend.open(url, DOMAINS, pool_size=4, migrate=False)

    async def put(data: bytes) -> BlobRef:
        writer = storage.blobs.new_writer()
        writer.write(data)
        blob = await writer.finish()
        await storage.blobs.publish([blob])
        return BlobRef(blob.blob_id, blob.size, blob.sha256)

    try:
        yield Backend(storage.mailboxes, put)
    finally:
        await storage.close()


@pytest.fixture(params=sorted([*BACKENDS, "postgresql"]))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgresql":  # a database of its own (tests/store/conftest.py)
        async for made in _postgresql(request.getfixturevalue("pg_url")):
            yield made
        return
    async for made in BACKENDS[request.param](tmp_path):
        yield made


STORAGE_BACKENDS = ["sqlite", "postgresql"]
DOMAINS = ("example.test", "example.org")


async def open_storage(name: str, root: Path, request: pytest.FixtureRequest) -> Storage:
    if name == "sqlite":
        return SqliteBackend.open(root / "data", DOMAINS)
    if name == "postgresql":
        from todoku.store.postgres.backend import PostgresBackend

        url = request.getfixturevalue("pg_url")  # skips where PostgreSQL cannot run
        return await PostgresBackend.open(url, DOMAINS, pool_size=4, migrate=False)
    raise AssertionError(f"unknown backend {name}")


@pytest.fixture(params=STORAGE_BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    made = await open_storage(request.param, tmp_path, request)
    try:
        yield made
    finally:
        await made.queue.drain()
        await made.close()
