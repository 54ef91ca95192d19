"""When each queue entry is next due: a heap of due times plus the latest time per entry.

Pushing and popping cost O(log n); a later schedule of an entry supersedes nothing but an
earlier one wins (``schedule`` keeps the earliest); an entry being worked on is not scheduled
again until its attempt ends (``again`` remembers that it should be looked at then). The wake
file that the command line touches after flush/hold/release/delete/sendmail is watched by a
``stat()`` (``WakeFile``).
"""

from __future__ import annotations

import heapq
from pathlib import Path


class Timetable:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()
        self._again: set[str] = set()

    def schedule(self, queue_id: str, when: float) -> None:
        if queue_id in self._busy:
            self._again.add(queue_id)
            return
        current = self._due.get(queue_id)
        if current is not None and current <= when:
            return
        self._due[queue_id] = when
        heapq.heappush(self._heap, (when, queue_id))

    def clear(self) -> None:
        """Forget every due time (before a rescan of the store)."""
        self._heap = []
        self._due = {}

    def pop_due(self, now: float) -> str | None:
        """The next entry due at ``now`` (None: none), marked busy."""
        while self._heap and self._heap[0][0] <= now:
            when, queue_id = heapq.heappop(self._heap)
            if self._due.get(queue_id) != when:
                continue  # superseded by an earlier or later schedule
            del self._due[queue_id]
            self._busy.add(queue_id)
            return queue_id
        return None

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    @property
    def busy(self) -> bool:
        """Some entry is being worked on."""
        return bool(self._busy)

    def done(self, queue_id: str) -> bool:
        """The entry's attempt ended; True when it was asked for meanwhile (look again)."""
        self._busy.discard(queue_id)
        if queue_id in self._again:
            self._again.discard(queue_id)
            return True
        return False

    def abandon(self, queue_id: str) -> None:
        """The attempt failed unexpectedly: forget that it was asked for meanwhile."""
        self._again.discard(queue_id)
        self._busy.discard(queue_id)


class WakeFile:
    """The file the command line touches after changing the queue; ``changed()`` by mtime."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime = 0

    def changed(self) -> bool:
        if self.path is None:
            return False
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime != self._mtime:
            self._mtime = mtime
            return True
        return False
