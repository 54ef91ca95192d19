"""Admin sessions: server-side records behind a random cookie, each with its CSRF token.

The cookie holds 32 random bytes and nothing else; the record (who, when, the CSRF token, the
password hash the login was checked against) stays here, keyed by a SHA-256 of the cookie, so
a memory or log view of the keys cannot be replayed as a cookie. A record ends:

- at logout (``end``);
- after ``IDLE`` seconds without a request, and ``LIFETIME`` after login whatever happens;
- when the user's password changes, is removed or loses the admin role: each request compares
  the stored user with the record (web/admin.py), so a ``todoku user passwd`` on the command
  line ends sessions as a change on the users page does (``end_user``);
- when the server restarts (records live in memory: a restart asks everyone to log in again).

At most ``MAX_SESSIONS`` records are kept; a new login past that drops the one idle longest.
The clock is injected, so tests move time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "__Host-todoku-session"  # __Host-: Secure, Path=/, no Domain (RFC 6265bis §4.1.3.2)
IDLE = 30 * 60.0
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 1000
MAX_COOKIE = 128  # a cookie value longer than ours is not ours


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    password_hash: str  # the user's hash at login: a different one now ends the session
    created: float
    seen: float
    admin: bool = False  # the user had the administrator role at login


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    """A CSRF token check in constant time; an absent or oversized token is never equal."""
    if not given or not expected or len(given) > MAX_COOKIE or len(expected) > MAX_COOKIE:
        return False
    # Both may come from the client (the login form's token is matched against a cookie).
    return hmac.compare_digest(
        given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


@dataclass
class Sessions:
    idle: float = IDLE
    lifetime: float = LIFETIME
    max_sessions: int = MAX_SESSIONS
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str, password_hash: str, admin: bool = False) -> tuple[str, Session]:
        """A new session; returns the cookie value (given to the browser once) and the record."""
        now = self.clock()
        self._expire(now)
        while len(self._records) >= self.max_sessions:
            oldest = min(self._records, key=lambda k: self._records[k].seen)
            del self._records[oldest]
        cookie = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), password_hash, now, now, admin)
        self._records[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session of this cookie (its idle time restarts), or None."""
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        key = _key(cookie)
        session = self._records.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen >= self.idle or now - session.created >= self.lifetime:
            del self._records[key]
            return None
        session.seen = now
        return session

    def end(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        return self._records.pop(_key(cookie), None)

    def end_user(self, user: str) -> int:
        """End every session of ``user`` (password changed, user removed); returns how many."""
        keys = [k for k, s in self._records.items() if s.user == user]
        for key in keys:
            del self._records[key]
        return len(keys)

    def count(self) -> int:
        return len(self._records)

    def _expire(self, now: float) -> None:
        dead = [
            k
            for k, s in self._records.items()
            if now - s.seen >= self.idle or now - s.created >= self.lifetime
        ]
        for key in dead:
            del self._records[key]
