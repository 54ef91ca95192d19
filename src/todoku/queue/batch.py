"""Group commit of the queue's state changes (issue 7).

Every delivery writes a few small facts: the attempt begins, the recipient's result, reported,
retired. Written one transaction each, every one waits for its own fsync of the SQLite WAL, and
a queue drains at about 1 / (4 fsyncs) per second however fast the remote is. ``StateWriter``
collects the calls that arrive while a transaction is on disk and runs them all in the next
one (``Store.run_batch``): one fsync for the whole group, each call still undone alone if it
fails. The same idea as the SMTP accept path's group commit, for the queue's bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from todoku.store.api import Store

T = TypeVar("T")

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

    async def run(self, call: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_groups())
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until every call handed over so far is on disk."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def close(self) -> None:
        """After ``drain``: stop the thread."""
        self._thread.shutdown(wait=False)

    async def _write_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self.store.run_batch, [call for call, _ in group]
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
