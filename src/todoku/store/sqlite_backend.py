"""The SQLite-and-files backend behind the async interfaces (issue 14).

``SqliteStore`` (store.sqlite) does the work, synchronously, on threads of its own: each thread
reads through its own connection, writes are short transactions, and the accept path has its
writer thread (group commit). This module puts the interfaces in front of it, so that nothing
waits for SQLite or the file system on the event loop:

- ``Directory`` lookups and changes run on a small pool (``STORE_THREADS``); SMTP's RCPT and
  AUTH and POP3's login await them.
- ``Queue`` reads run on the same pool; its writes go to one thread that gathers every write
  waiting at that moment into one transaction (``SqliteStore.run_batch``, one savepoint per
  write: one that fails is undone alone). The queue's bookkeeping after each delivery is a few
  small writes, and one WAL fsync each would bound a drain at about 1 / (4 fsyncs) per second.
- ``Blobs``: small content in the index's ``contents`` table, larger content as
  ``store.blobs.FileBlobStore``'s files (``finish`` fsyncs those on the fsync pool).
- ``Mailboxes`` (folders, flags, MODSEQ, the change feed) is ``store.sqlite_mailboxes``.
- ``Intake.accept`` is ``SqliteStore.commit_spooled``: small content goes straight to the writer
  thread's group commit, which writes it with the rows in one transaction (one fsync for the
  group); larger content is fsynced on a pool thread first, then renamed and its directory
  fsynced by the group commit. One wake-up of the event loop per group.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from todoku.store.api import Alias, IncomingMessage, QueueEntry, RecipientResult, SpooledBlob, User
from todoku.store.backend import Storage
from todoku.store.blobs import FileBlobStore, FileBlobWriter, StorageFaults
from todoku.store.content import BlobWriter
from todoku.store.directory import UserExists
from todoku.store.intake import QueuedListener
from todoku.store.queue import AttemptRecord, Due
from todoku.store.sqlite import _FSYNC_POOL, SqliteStore
from todoku.store.sqlite_mailboxes import SqliteMailboxes

T = TypeVar("T")
log = logging.getLogger("todoku.store")

# Threads for lookups and short writes: each holds its own SQLite connection. Lookups take
# well under a millisecond; a few threads keep a slow one (a cold page) from holding up RCPT.
STORE_THREADS = 4
# One group transaction holds at most this many queue writes: a long transaction holds the
# write lock that the accept path needs too.
MAX_BATCH = 512


class GroupWriter:
    """``await writer.run(call)``: ``call`` (a closure over ``SqliteStore`` methods) runs in the
    next group transaction on the writer's thread; its result or exception comes back to the
    caller. The transaction is not cancelled with the caller (``asyncio.shield``)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        # A thread of its own: a group transaction must not wait behind the reads of the
        # hundreds of messages that start their attempts after a flush.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="todoku-queue-state")
        # The files of retired entries are unlinked on another thread, after their commit:
        # measured with py-spy on a 2,000-message drain, unlink took 62% of the state thread
        # (it waits on the file system's journal, which the WAL fsync just kept busy), and the
        # next group transaction waited behind it (issue 7).
        self._unlinker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="todoku-queue-unlink")

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((call, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._write_groups())
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until every call handed over so far is on disk, and its files deleted."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        # One thread, first in first out: this runs after every deletion handed over before.
        await asyncio.get_running_loop().run_in_executor(self._unlinker, _nothing)

    def close(self) -> None:
        """After ``drain``: stop the threads."""
        self._thread.shutdown(wait=False)
        self._unlinker.shutdown(wait=False)

    def _delete_later(self, actions: list[Callable[[], None]]) -> None:
        """On the writer's thread, after a commit: the deletions go to the unlink thread."""
        if actions:
            self._unlinker.submit(_run_all, actions)

    async def _write_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results = await loop.run_in_executor(
                    self._thread,
                    self.store.run_batch,
                    [call for call, _ in group],
                    self._delete_later,
                )
            except Exception as exc:  # noqa: BLE001 - the transaction failed (disk full): all hear it
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _nothing() -> None:
    pass


def _run_all(actions: list[Callable[[], None]]) -> None:
    for action in actions:
        try:
            action()
        except OSError:
            # The row is gone already; a file left behind is an orphan that fsck reports.
            log.exception("deleting a delivered message's file failed")


class _Pool:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=STORE_THREADS, thread_name_prefix="todoku-store"
        )

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)


class SqliteDirectory:
    def __init__(self, store: SqliteStore, domains: tuple[str, ...], pool: _Pool) -> None:
        self._store = store
        self._domains = tuple(d.lower() for d in domains)
        self._pool = pool

    async def domains(self) -> tuple[str, ...]:
        return self._domains

    async def add_user(self, address: str, password_hash: str, *, admin: bool = False) -> None:
        try:
            await self._pool.run(self._store.add_user, address, password_hash, admin)
        except sqlite3.IntegrityError:
            raise UserExists(address.lower()) from None

    async def get_user(self, address: str) -> User | None:
        return await self._pool.run(self._store.get_user, address)

    async def users(self) -> list[User]:
        return await self._pool.run(self._store.list_users)

    async def set_password(self, address: str, password_hash: str) -> bool:
        return await self._pool.run(self._store.set_password, address, password_hash)

    async def delete_user(self, address: str) -> bool:
        return await self._pool.run(self._store.delete_user, address)

    async def is_admin(self, address: str) -> bool:
        user = await self.get_user(address)
        return user is not None and user.admin

    async def set_admin(self, address: str, admin: bool) -> bool:
        return await self._pool.run(self._store.set_admin, address, admin)

    async def add_alias(self, source: str, target: str) -> None:
        await self._pool.run(self._store.add_alias, source, target)

    async def delete_alias(self, source: str, target: str | None = None) -> int:
        return await self._pool.run(self._store.delete_alias, source, target)

    async def aliases(self) -> list[Alias]:
        return await self._pool.run(self._store.list_aliases)

    async def alias_targets(self, source: str) -> list[str]:
        return await self._pool.run(self._store.alias_targets, source)


class SqliteQueue:
    def __init__(self, store: SqliteStore, pool: _Pool, writer: GroupWriter) -> None:
        self._store = store
        self._pool = pool
        self._writer = writer

    async def entries(self) -> list[QueueEntry]:
        return await self._pool.run(self._store.list_queue)

    async def get(self, queue_id: str) -> QueueEntry | None:
        return await self._pool.run(self._store.get_queue_entry, queue_id)

    async def due(self) -> list[Due]:
        rows = await self._pool.run(self._store.queue_schedule)
        return [Due(*row) for row in rows]

    async def history(self, queue_id: str) -> list[AttemptRecord]:
        rows = await self._pool.run(self._store.queue_history, queue_id)
        return [AttemptRecord(**row) for row in rows]  # type: ignore[arg-type]

    async def begin_attempt(self, queue_id: str, started_at: float, next_attempt: float) -> int:
        store = self._store
        return await self._writer.run(
            lambda: store.begin_attempt(queue_id, started_at, next_attempt)
        )

    async def record_results(
        self,
        queue_id: str,
        results: Sequence[RecipientResult],
        when: float,
        *,
        reported: Sequence[str] = (),
        retire: bool = False,
    ) -> bool:
        store = self._store

        def record() -> bool:
            store.record_results(queue_id, list(results), when)
            if reported:
                store.mark_reported(queue_id, list(reported))
            return retire and store.retire_queue_entry(queue_id)

        return await self._writer.run(record)

    async def end_attempt(self, queue_id: str, next_attempt: float, last_error: str) -> None:
        store = self._store
        await self._writer.run(lambda: store.end_attempt(queue_id, next_attempt, last_error))

    async def mark_reported(
        self, queue_id: str, addresses: Sequence[str], *, retire: bool = False
    ) -> bool:
        store = self._store

        def mark() -> bool:
            if addresses:
                store.mark_reported(queue_id, list(addresses))
            return retire and store.retire_queue_entry(queue_id)

        return await self._writer.run(mark)

    async def mark_delay_warned(self, queue_id: str) -> None:
        store = self._store
        await self._writer.run(lambda: store.mark_delay_warned(queue_id))

    async def retire(self, queue_id: str) -> bool:
        store = self._store
        return await self._writer.run(lambda: store.retire_queue_entry(queue_id))

    async def hold(self, queue_id: str, held: bool, now: float) -> bool:
        store = self._store
        return await self._writer.run(lambda: store.set_queue_held(queue_id, held, now))

    async def flush(self, queue_id: str | None, domain: str | None, now: float) -> int:
        store = self._store
        return await self._writer.run(lambda: store.flush_queue(queue_id, domain, now))

    async def delete(self, queue_id: str) -> bool:
        store = self._store
        return await self._writer.run(lambda: store.delete_queue_entry(queue_id))

    async def drain(self) -> None:
        await self._writer.drain()


class FileContentWriter:
    """``BlobWriter`` over a ``FileBlobWriter``: ``finish`` fsyncs on the fsync pool."""

    def __init__(self, inner: FileBlobWriter) -> None:
        self.inner = inner

    @property
    def blob_id(self) -> str:
        return self.inner.blob_id

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    async def finish(self) -> SpooledBlob:
        if self.inner.inline:
            return self.inner.finish()  # held for the index: nothing to wait for yet
        return await asyncio.get_running_loop().run_in_executor(_FSYNC_POOL, self.inner.finish)

    def abort(self) -> None:
        self.inner.abort()


class FileBlobs:
    """Content of both kinds (``contents`` rows and files), the same to every reader."""

    def __init__(self, store: SqliteStore, pool: _Pool) -> None:
        self._store = store
        self._files: FileBlobStore = store.blobs
        self._pool = pool

    def new_writer(self) -> FileContentWriter:
        return FileContentWriter(self._files.new_writer())

    async def publish(self, blobs: Sequence[SpooledBlob]) -> None:
        await self._pool.run(self._store.publish, list(blobs))

    async def open(self, blob_id: str) -> BinaryIO:
        return await self._pool.run(self._store.open_blob, blob_id)

    def open_blocking(self, blob_id: str) -> BinaryIO:
        return self._store.open_blob(blob_id)


class SqliteIntake:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def accept(
        self, content: BlobWriter, message_for: Callable[[SpooledBlob], IncomingMessage]
    ) -> str:
        if not isinstance(content, FileContentWriter):
            raise TypeError("Intake.accept takes a writer from the same backend's Blobs")
        return await self._store.commit_spooled(content.inner, message_for)

    def on_queued(self, listener: QueuedListener | None) -> None:
        self._store.on_queued = listener


class SqliteBackend:
    """The ``Storage`` of one data directory: SQLite index (todoku.db) and message files."""

    def __init__(self, store: SqliteStore, domains: tuple[str, ...]) -> None:
        self.store = store  # for the backend's own tools (fsck, backup, transfer) and tests
        self._pool = _Pool()
        self._writer = GroupWriter(store)
        self.directory = SqliteDirectory(store, domains, self._pool)
        self.queue = SqliteQueue(store, self._pool, self._writer)
        self.blobs = FileBlobs(store, self._pool)
        self.intake = SqliteIntake(store)
        self.mailboxes = SqliteMailboxes(store)  # on a pool of its own (store.sqlite_mailboxes)

    @classmethod
    def open(
        cls, data_dir: Path, domains: tuple[str, ...], faults: StorageFaults | None = None
    ) -> SqliteBackend:
        return cls(SqliteStore(data_dir, faults), domains)

    def sweep(self) -> int:
        """At server start: remove content whose writer never finished (a crash)."""
        return self.store.blobs.sweep_tmp()

    async def close(self) -> None:
        await self._writer.drain()
        self._writer.close()
        self._pool.executor.shutdown(wait=True)
        await asyncio.to_thread(self.store.close)

    def close_blocking(self) -> None:
        """``close`` without an event loop (a command after its last ``asyncio.run``); any
        queue write was awaited by whoever made it, so there is nothing left to drain."""
        self._writer.close()
        self._pool.executor.shutdown(wait=True)
        self.store.close()


def _is_storage(backend: SqliteBackend) -> Storage:
    return backend  # mypy checks here that the backend implements every interface
