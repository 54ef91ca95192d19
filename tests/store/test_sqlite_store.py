"""The embedded store: group commit, shared content, UIDs, deletion and purge."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.blobs import HELD_IN_MEMORY, INLINE_LIMIT
from todoku.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path)
    yield s
    s.close()


def spool(store: SqliteStore, content: bytes):  # type: ignore[no-untyped-def]
    writer = store.new_blob()
    writer.write(content)
    return writer.finish()


def present(store: SqliteStore, blob_id: str) -> bool:
    try:
        store.open_blob(blob_id).close()
    except FileNotFoundError:
        return False
    return True


def copies(store: SqliteStore) -> tuple[int, int]:
    """(content rows in the index, message files), read from outside the store."""
    db = sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT COUNT(*) FROM contents").fetchone()[0]
    finally:
        db.close()
    files = [p for p in store.blobs.messages_dir.rglob("*") if p.is_file()]
    return rows, len(files)


SMALL = b"Subject: shared\r\n\r\nx\r\n"
LARGE = SMALL + b"y" * INLINE_LIMIT  # one byte past the limit: a file


async def test_concurrent_commits_get_distinct_uids_and_content(store: SqliteStore) -> None:
    async def one(i: int) -> str:
        blob = spool(store, f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
        return await store.commit(
            IncomingMessage(blob, "a@remote.test", ("alice@example.test",), subject=str(i))
        )

    ids = await asyncio.gather(*(one(i) for i in range(200)))
    assert len(set(ids)) == 200
    messages = store.list_messages("alice@example.test")
    assert [m.uid for m in messages] == list(range(1, 201))
    for message in messages:
        with store.open_blob(message.blob_id) as handle:
            assert (
                handle.read()
                == f"Subject: {message.subject}\r\n\r\nbody {message.subject}\r\n".encode()
            )
    assert not any(store.blobs.tmp_dir.iterdir()), "tmp/ holds nothing once committed"


@pytest.mark.parametrize(("content", "kind"), [(SMALL, (1, 0)), (LARGE, (0, 1))])
async def test_one_copy_for_many_recipients_and_the_queue(
    store: SqliteStore, content: bytes, kind: tuple[int, int]
) -> None:
    blob = spool(store, content)
    await store.commit(
        IncomingMessage(
            blob,
            "a@remote.test",
            ("alice@example.test", "bob@example.test"),
            (RemoteRecipient("c@elsewhere.test", "rfc822;C@elsewhere.test", ("FAILURE",)),),
        )
    )
    assert copies(store) == kind  # small content in the index, larger in a file; once
    with store.open_blob(blob.blob_id) as handle:
        assert handle.read() == content
    [entry] = store.list_queue()
    assert entry.recipients[0].orcpt == "rfc822;C@elsewhere.test"
    assert entry.recipients[0].notify == ("FAILURE",)
    assert store.list_messages("bob@example.test")[0].blob_id == entry.blob_id


@pytest.mark.parametrize("filler", [0, INLINE_LIMIT])
async def test_delete_undelete_new_uid_and_purge(store: SqliteStore, filler: int) -> None:
    for i in range(3):
        blob = spool(store, f"m{i}".encode() + b"x" * filler)
        await store.commit(IncomingMessage(blob, "", ("alice@example.test",)))
    first, second, third = store.list_messages("alice@example.test")
    assert store.mark_deleted("alice@example.test", [second.id], when=100.0) == 1
    assert [m.uid for m in store.list_messages("alice@example.test")] == [1, 3]
    assert [m.id for m in store.list_deleted("alice@example.test")] == [second.id]
    assert store.undelete("alice@example.test", None, since=None) == 1
    back = next(m for m in store.list_messages("alice@example.test") if m.id == second.id)
    assert back.uid == 4 and back.unique_id != second.unique_id  # clients fetch it again
    store.mark_deleted("alice@example.test", [first.id], when=100.0)
    assert store.purge_deleted(older_than=99.0) == 0
    assert store.purge_deleted(older_than=101.0) == 1
    assert not present(store, first.blob_id)
    assert present(store, third.blob_id)
    assert copies(store) == ((2, 0) if filler == 0 else (0, 2))


@pytest.mark.parametrize("filler", [0, INLINE_LIMIT])
async def test_purge_keeps_content_still_queued(store: SqliteStore, filler: int) -> None:
    blob = spool(store, b"both" + b"x" * filler)
    await store.commit(
        IncomingMessage(blob, "", ("alice@example.test",), (RemoteRecipient("x@elsewhere.test"),))
    )
    [message] = store.list_messages("alice@example.test")
    store.mark_deleted("alice@example.test", [message.id], when=1.0)
    assert store.purge_deleted(older_than=2.0) == 1
    assert present(store, blob.blob_id)
    assert store.delete_queue_entry(blob.blob_id)
    assert not present(store, blob.blob_id)  # nothing refers to it any more: gone
    assert copies(store) == (0, 0)


def test_sweep_removes_uncommitted_content(store: SqliteStore) -> None:
    writer = store.new_blob()
    # Past what a writer holds in memory, so that the content is in tmp/ before finish().
    writer.write(b"never acknowledged" + b"x" * HELD_IN_MEMORY)
    assert store.blobs.sweep_tmp() == 1
    assert not any(store.blobs.tmp_dir.iterdir())
