"""When to try again, when to warn, when to give up. Pure functions of the queue settings, the
message's arrival time, its attempt count and the current time; nothing here reads a clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    current: float = 1_000_000.0

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


@dataclass(frozen=True, slots=True)
class Schedule:
    retry: tuple[float, ...]  # seconds after each failed attempt; the last repeats
    delay_warning: float  # 0 disables delay warnings
    max_lifetime: float

    def retry_interval(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based): retry[n-1], last repeating."""
        if attempts < 1:
            return 0.0
        return self.retry[min(attempts, len(self.retry)) - 1]

    def expires_at(self, received_at: float) -> float:
        return received_at + self.max_lifetime

    def expired(self, received_at: float, now: float) -> bool:
        return now >= self.expires_at(received_at)

    def delay_warning_at(self, received_at: float) -> float | None:
        return received_at + self.delay_warning if self.delay_warning > 0 else None

    def delay_warning_due(self, received_at: float, now: float, already_warned: bool) -> bool:
        due = self.delay_warning_at(received_at)
        return due is not None and not already_warned and now >= due

    def next_attempt(
        self, received_at: float, attempts: int, now: float, *, minimum_wait: float = 0.0
    ) -> float:
        """After the ``attempts``-th failure at ``now``: the next try, never later than expiry
        (so the final report goes out on time), never sooner than ``minimum_wait``."""
        wait = max(self.retry_interval(attempts), minimum_wait)
        return min(now + wait, max(self.expires_at(received_at), now))

    def next_wakeup(self, received_at: float, next_attempt: float, already_warned: bool) -> float:
        """The earliest moment something must happen to this message."""
        wake = min(next_attempt, self.expires_at(received_at))
        warn = self.delay_warning_at(received_at)
        if warn is not None and not already_warned and warn < self.expires_at(received_at):
            wake = min(wake, warn)
        return wake
