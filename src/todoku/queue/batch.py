"""Group commit of the queue's state changes (issue 7).

Every delivery writes a few small facts: the attempt begins, the recipient's result, reported,
retired. Written one transaction each, every one waits for its own fsync of the SQLite WAL, and
a queue drains at about 1 / (4 fsyncs) per second however fast the remote is. ``StateWriter``
collects the calls that arrive while a transaction is on disk and runs them all in the next
one (``Store.run_batch``): one fsync for the whole group, each call still undone alone if it
fails. The same idea as the SMTP accept path's group commit, for the queue's bookkeeping.

``ReadBatcher`` does the same for the reads that start each attempt (the entry and the message
file): a flush makes hundreds of messages due at once, and one hop to a worker thread per
message cost about as much as the read itself (issue 7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from todoku.store.api import Store

T = TypeVar("T")
log = logging.getLogger("todoku.queue")

# One transaction holds at most this many calls: a long transaction holds the write lock that
# the SMTP accept path needs too.
MAX_BATCH = 512


class StateWriter:
    """``await writer.run(call)``: ``call`` (a closure over store methods) runs in the next
    group transaction on a worker thread; its result or exception comes back to the caller.

    The transaction is not cancelled with the caller: once a remote said 250 the record lands
    even while the server stops (``drain`` waits for it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        # A thread of its own: a group transaction must not queue in the default executor
        # behind the reads of the hundreds of messages that are starting their attempts.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="todoku-queue-state")
        # The files of retired entries are unlinked on another thread, after their commit:
        # measured with py-spy on a 2,000-message drain, unlink took 62% of the state thread
        # (it waits on the file system's journal, which the WAL fsync just kept busy), and the
        # next group transaction waited behind it.
        self._unlinker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="todoku-queue-unlink")

    async def run(self, call: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_groups())
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
        """On the state thread, after a commit: the deletions go to the unlink thread."""
        if actions:
            self._unlinker.submit(_run_all, actions)

    async def _write_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results = await asyncio.get_running_loop().run_in_executor(
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


# One hop reads at most this many entries: the first messages of a flush start on their way
# while the rest are still being read.
MAX_READ_GROUP = 64


class ReadBatcher:
    """``await reader.run(call)``: ``call`` runs on a worker thread together with the other
    calls that arrived while the previous group was being read, one thread hop per group.
    Each caller gets its own result or exception. A cancelled caller's result is dropped."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((call, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._read_groups())
        return await future

    async def _read_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group, self._waiting = (self._waiting[:MAX_READ_GROUP], self._waiting[MAX_READ_GROUP:])
            group = [(call, future) for call, future in group if not future.done()]
            if not group:
                continue
            try:
                results = await loop.run_in_executor(None, _run_each, [call for call, _ in group])
            except BaseException as exc:
                # Cancelled (the loop is stopping) or no executor left: nobody may wait forever.
                for _, future in group + self._waiting:
                    if not future.done():
                        future.set_exception(
                            exc
                            if isinstance(exc, Exception)
                            else RuntimeError("queue reader stopped")
                        )
                self._waiting = []
                raise
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(result, _Raised):
                    future.set_exception(result.error)
                else:
                    future.set_result(result)


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _run_each(calls: list[Callable[[], Any]]) -> list[Any]:
    """On the worker thread: every call, each one's failure kept for its own caller."""
    results: list[Any] = []
    for call in calls:
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the caller that asked
            results.append(_Raised(exc))
    return results
