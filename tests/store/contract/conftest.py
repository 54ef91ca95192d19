"""Backends for the contract suites: every ``Mailboxes`` implementation runs the same tests.

A backend fixture gives the implementation and a way to store content first (``put``), as the
IMAP APPEND path does with the blob store before it calls ``Mailboxes.append``."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from todoku.store.mailboxes import BlobRef, Mailboxes
from todoku.store.memory_mailboxes import MemoryMailboxes


@dataclass
class Backend:
    mailboxes: Mailboxes
    put: Callable[[bytes], Awaitable[BlobRef]]


async def _memory_put(data: bytes) -> BlobRef:
    blob_id = secrets.token_hex(8).upper()
    return BlobRef(blob_id, len(data), hashlib.sha256(data).hexdigest())


async def _memory(tmp_path: Path) -> AsyncIterator[Backend]:
    yield Backend(MemoryMailboxes(), _memory_put)


BACKENDS: dict[str, Callable[[Path], AsyncIterator[Backend]]] = {"memory": _memory}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in BACKENDS[request.param](tmp_path):
        yield made
