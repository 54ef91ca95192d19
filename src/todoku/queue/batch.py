"""Batched reads for the queue runner (issue 7).

``ReadBatcher`` runs the reads that start each attempt (the message file, its DKIM signature)
together on a worker thread: a flush makes hundreds of messages due at once, and one hop to a
worker thread per message cost about as much as the read itself. (The group commit of the
queue's state changes is the storage backend's business: ``store.queue``.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("todoku.queue")

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
