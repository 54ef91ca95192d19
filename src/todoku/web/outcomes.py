"""Outbound results per day, for the deliverability page's 30-day chart.

The queue's own history of a message goes when the message leaves the queue, and the metrics
count only since the server started; this keeps, for each UTC day, how many recipient attempts
ended delivered, deferred or bounced, by the analyzer's reason word (the labels of
``todoku_deliveries`` in /metrics, counted by the same hook, web/metrics.py).

Kept in memory and written to ``<data_dir>/web/outcomes.json`` (atomically: a new file, fsync,
rename) when app.py asks, once a minute and at shutdown: these are counts for a chart, not
mail, so a crash loses at most the last minute of them. Days older than ``KEEP_DAYS`` are
dropped; the file is bounded by days × results × reasons, and a reason word is only ever one
of the analyzer's (a short word), so nobody outside can grow it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("todoku.web")

KEEP_DAYS = 31
MAX_KEYS = 10_000  # (day, result, reason) triples kept at most, whatever happens
MAX_FILE = 4 * 1024 * 1024  # a larger file is not ours: ignored, with a warning


def day_of(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


@dataclass
class DailyOutcomes:
    path: Path | None = None  # None: in memory only (tests)
    clock: Callable[[], float] = time.time
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    changed: bool = False

    def add(self, result: str, reason: str) -> None:
        """One recipient's attempt ended ``result`` (delivered, deferred, bounced) for
        ``reason``. Event loop only; cheap."""
        key = (day_of(self.clock()), result[:20], reason[:40])
        if key not in self.counts and len(self.counts) >= MAX_KEYS:
            self._forget_old()
            if len(self.counts) >= MAX_KEYS:
                return
        self.counts[key] = self.counts.get(key, 0) + 1
        self.changed = True

    def days(self, count: int = 30) -> list[str]:
        """The last ``count`` UTC days, oldest first, today last."""
        now = self.clock()
        return [day_of(now - 86400 * back) for back in range(count - 1, -1, -1)]

    def rows(self, count: int = 30) -> list[tuple[str, str, str, int]]:
        """(day, result, reason, count) for the last ``count`` days."""
        wanted = set(self.days(count))
        return sorted((d, r, w, n) for (d, r, w), n in self.counts.items() if d in wanted)

    def _forget_old(self) -> None:
        keep = set(self.days(KEEP_DAYS))
        for key in [k for k in self.counts if k[0] not in keep]:
            del self.counts[key]

    # ------------------------------------------------------------------ the file (worker thread)

    def load(self) -> None:
        """Read the file if there is one; a missing or unreadable file starts from nothing."""
        if self.path is None:
            return
        try:
            if self.path.stat().st_size > MAX_FILE:
                log.warning("%s: too large for outcome counts; ignored", self.path)
                return
            data = json.loads(self.path.read_text("utf-8"))
            loaded = {
                (str(d), str(r), str(w)): int(n)
                for d, r, w, n in data["counts"][:MAX_KEYS]
                if isinstance(n, int) and n > 0
            }
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: cannot read the outcome counts (%s); starting afresh", self.path, exc)
            return
        for key, number in loaded.items():
            self.counts[key] = self.counts.get(key, 0) + number
        self._forget_old()

    def snapshot(self) -> list[list[object]] | None:
        """What to write, taken on the event loop; None when nothing changed."""
        if not self.changed:
            return None
        self.changed = False
        self._forget_old()
        return [[d, r, w, n] for (d, r, w), n in sorted(self.counts.items())]

    def write(self, rows: list[list[object]]) -> None:
        """Write ``snapshot()``'s rows: a new file, fsync, rename (in a worker thread)."""
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump({"counts": rows}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)


async def save(daily: DailyOutcomes) -> None:
    """Write the counts if they changed (the file work in a worker thread)."""
    import asyncio

    rows = daily.snapshot()
    if rows is None:
        return
    try:
        await asyncio.to_thread(daily.write, rows)
    except OSError as exc:
        daily.changed = True  # try again next time
        log.warning("%s: cannot write the outcome counts: %s", daily.path, exc)


async def keep_saved(daily: DailyOutcomes, interval: float = 60.0) -> None:
    """Save every ``interval`` seconds until cancelled (app.py runs it, and saves once more
    when it stops)."""
    import asyncio

    while True:
        await asyncio.sleep(interval)
        await save(daily)
