"""Group commit of the queue's bookkeeping (issue 7): ``SqliteStore.run_batch`` and the SQLite
backend's ``GroupWriter`` (behind ``Queue``'s writes) against a real SQLite store; and the
runner's ``queue.batch.ReadBatcher``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from todoku.store.api import IncomingMessage, RecipientResult, RemoteRecipient
from todoku.store.blobs import INLINE_LIMIT
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import GroupWriter


async def queued(store: SqliteStore, count: int) -> list[str]:
    ids = []
    for number in range(count):
        writer = store.new_blob()
        # Past INLINE_LIMIT: kept as a file (these tests are about when files are deleted).
        writer.write(f"Subject: {number}\r\n\r\nbody\r\n".encode() + b"x" * INLINE_LIMIT)
        blob = writer.finish()
        ids.append(
            await store.commit(
                IncomingMessage(
                    blob=blob,
                    sender="a@example.test",
                    remote=(RemoteRecipient(f"r{number}@remote.test"),),
                )
            )
        )
    return ids


def delivered(address: str) -> RecipientResult:
    return RecipientResult(
        address,
        "delivered",
        "end-of-data",
        250,
        "2.0.0",
        "Ok",
        "mx [127.0.0.1]",
        "delivered",
        "2.0.0",
        "remote.test",
    )


async def test_a_failing_call_is_undone_alone_and_the_rest_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    try:
        first, second = await queued(store, 2)

        def broken() -> None:
            store.begin_attempt(second, 1.0, 99.0)
            raise ValueError("boom")

        results = store.run_batch([lambda: store.begin_attempt(first, 1.0, 50.0), broken])
        assert results[0] == 1
        assert isinstance(results[1], ValueError)
        entries = {e.id: e for e in store.list_queue()}
        assert (entries[first].attempts, entries[first].next_attempt) == (1, 50.0)
        assert entries[second].attempts == 0  # its savepoint was rolled back
    finally:
        store.close()


async def test_retiring_in_a_batch_deletes_the_file_after_the_commit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    try:
        [queue_id] = await queued(store, 1)
        entry = store.get_queue_entry(queue_id)
        assert entry is not None
        path = store.blobs.path_of(entry.blob_id)
        address = entry.recipients[0].address
        seen_during_batch = []

        def finish() -> bool:
            store.record_results(queue_id, [delivered(address)], time.time())
            store.mark_reported(queue_id, [address])
            retired = store.retire_queue_entry(queue_id)
            seen_during_batch.append(path.exists())
            return retired

        assert store.run_batch([finish]) == [True]
        assert seen_during_batch == [True]  # still there while the transaction was open
        assert not path.exists()
        assert store.get_queue_entry(queue_id) is None
    finally:
        store.close()


async def test_the_state_writer_deletes_retired_files_off_its_own_thread(tmp_path: Path) -> None:
    """GroupWriter hands the unlinks to another thread after the commit; drain waits for them."""
    import threading

    store = SqliteStore(tmp_path)
    try:
        ids = await queued(store, 3)
        entries = [store.get_queue_entry(queue_id) for queue_id in ids]
        paths = [store.blobs.path_of(e.blob_id) for e in entries if e is not None]
        deleted_on: set[str] = set()
        state_threads: set[str] = set()
        delete = store.blobs.delete

        def delete_and_note(blob_id: str) -> None:
            deleted_on.add(threading.current_thread().name)
            delete(blob_id)

        store.blobs.delete = delete_and_note  # type: ignore[method-assign]
        writer = GroupWriter(store)

        def finish(queue_id: str, address: str) -> bool:
            state_threads.add(threading.current_thread().name)
            store.record_results(queue_id, [delivered(address)], time.time())
            store.mark_reported(queue_id, [address])
            return store.retire_queue_entry(queue_id)

        results = await asyncio.gather(
            *(
                writer.run(lambda e=e: finish(e.id, e.recipients[0].address))
                for e in entries
                if e is not None
            )
        )
        await writer.drain()
        assert results == [True, True, True]
        assert not any(path.exists() for path in paths)
        assert all(store.get_queue_entry(queue_id) is None for queue_id in ids)
        assert deleted_on and not deleted_on & state_threads
        writer.close()
    finally:
        store.close()


async def test_concurrent_updates_share_transactions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    try:
        ids = await queued(store, 60)
        batches: list[int] = []
        run_batch = store.run_batch

        def counting(calls, *rest):  # type: ignore[no-untyped-def]
            batches.append(len(calls))
            return run_batch(calls, *rest)

        store.run_batch = counting  # type: ignore[method-assign]
        writer = GroupWriter(store)
        results = await asyncio.gather(
            *(
                writer.run(lambda queue_id=queue_id: store.begin_attempt(queue_id, 1.0, 77.0))
                for queue_id in ids
            )
        )
        await writer.drain()
        assert results == [1] * len(ids)
        assert sum(batches) == len(ids)
        assert len(batches) < len(ids) // 4  # grouped: far fewer transactions than calls
        assert all(e.attempts == 1 and e.next_attempt == 77.0 for e in store.list_queue())

        with pytest.raises(KeyError):  # an exception reaches its own caller only
            await writer.run(lambda: {}["missing"])
        assert await writer.run(lambda: store.begin_attempt(ids[0], 2.0, 88.0)) == 2
    finally:
        store.close()


async def test_reads_that_arrive_together_share_one_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ReadBatcher: concurrent reads run as one group on a worker thread, each caller gets its
    own entry, and one caller's failure reaches only that caller."""
    import threading

    from todoku.queue import batch

    hops: list[int] = []
    run_each = batch._run_each

    def counted(calls):  # counts the thread hops; the calls themselves run for real
        hops.append(len(calls))
        return run_each(calls)

    monkeypatch.setattr(batch, "_run_each", counted)
    store = SqliteStore(tmp_path)
    try:
        ids = await queued(store, 10)
        reader = batch.ReadBatcher()
        threads: set[int] = set()

        def read(queue_id: str):
            threads.add(threading.get_ident())
            return store.get_queue_entry(queue_id)

        def broken():
            raise OSError("disk gone")

        results = await asyncio.gather(
            *(reader.run(lambda q=q: read(q)) for q in ids),
            reader.run(broken),
            return_exceptions=True,
        )
        assert [r.id for r in results[:-1]] == ids
        assert isinstance(results[-1], OSError) and "disk gone" in str(results[-1])
        assert threading.get_ident() not in threads  # off the event loop
        assert hops == [11]
    finally:
        store.close()


async def test_more_reads_than_a_group_all_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    from todoku.queue import batch

    hops: list[int] = []
    run_each = batch._run_each
    monkeypatch.setattr(
        batch, "_run_each", lambda calls: (hops.append(len(calls)), run_each(calls))[1]
    )
    reader = batch.ReadBatcher()
    count = batch.MAX_READ_GROUP * 2 + 3
    results = await asyncio.wait_for(
        asyncio.gather(*(reader.run(lambda n=n: n * n) for n in range(count))), 30
    )
    assert results == [n * n for n in range(count)]
    assert hops == [batch.MAX_READ_GROUP, batch.MAX_READ_GROUP, 3]
