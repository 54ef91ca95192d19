"""Per-client rate limits and greylisting for the MX; both off unless configured.

Counters live in memory: a restart forgets them, which at worst lets a client start over; that
is the right trade for a check whose only job is to slow abuse down. IPv6 clients are counted
per /64, because one host usually owns a whole /64. Time comes from an injected clock.
"""

from __future__ import annotations

import collections
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from todoku.proto.smtp.codes import Reply

WINDOW = 60.0  # limits are per minute
GREYLIST_FORGET = 36 * 3600.0  # an entry never retried is dropped after this
GREYLIST_REMEMBER = 35 * 86400.0  # a passed triplet stays passed this long


def client_key(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def too_many_connections(ip: str, limit: int) -> Reply:
    return Reply(
        421,
        "4.7.0",
        f"Error: too many connections from [{ip}] (limit {limit} per minute); try again later",
    )


def too_many_messages(ip: str, limit: int) -> Reply:
    return Reply(
        421,
        "4.7.0",
        f"Error: too many messages from [{ip}] (limit {limit} per minute); try again later",
    )


def greylisted(delay: float) -> Reply:
    return Reply(
        450,
        "4.7.1",
        f"Recipient address rejected: Greylisted, please try again in {int(delay)} seconds",
    )


@dataclass
class RateLimiter:
    """A sliding one-minute window of events per client."""

    per_minute: int  # 0 = no limit
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, collections.deque[float]] = field(default_factory=dict)

    def allow(self, ip: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = self.clock()
        key = client_key(ip)
        events = self._events.setdefault(key, collections.deque())
        while events and events[0] <= now - WINDOW:
            events.popleft()
        if len(events) >= self.per_minute:
            return False
        events.append(now)
        if len(self._events) > 100_000:  # bounded memory under a flood of distinct clients
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._events.items() if not q or q[-1] <= now - WINDOW]:
            del self._events[key]


@dataclass
class Greylist:
    """Temporarily refuse the first attempt of each (client, sender, recipient); a real MTA
    retries after a few minutes and then gets through, most spam software never comes back."""

    delay: float
    clock: Callable[[], float] = time.time
    _first_seen: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _passed: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def check(self, ip: str, sender: str, recipient: str) -> Reply | None:
        now = self.clock()
        key = (client_key(ip), sender.lower(), recipient.lower())
        if key in self._passed and now - self._passed[key] < GREYLIST_REMEMBER:
            self._passed[key] = now
            return None
        first = self._first_seen.get(key)
        if first is None or now - first > GREYLIST_FORGET:
            self._first_seen[key] = now
            return greylisted(self.delay)
        if now - first < self.delay:
            return greylisted(self.delay - (now - first))
        del self._first_seen[key]
        self._passed[key] = now
        return None
