"""Passwords (Argon2id via argon2-cffi) and the throttle that stops password guessing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from todoku.mailauth.limits import client_key

# Argon2id with OWASP's password-storage parameters (19 MiB, 2 passes, 1 lane): about 60 ms of
# CPU per check here, where the library's defaults (64 MiB, 3 passes, 4 lanes) cost 0.35 s — paid
# by every POP3 poll and SMTP AUTH, so a busy server spent whole cores on logins. A hash keeps the
# parameters it was made with, so older hashes still verify (at their own cost) until the
# password is next set.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verifying against this when the user does not exist keeps the time the same as for a real user,
# so response timing does not reveal which addresses have accounts.
_DUMMY_HASH = _HASHER.hash("todoku-no-such-user")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Slow on purpose (about 60 ms of CPU): call it from a worker thread in the server."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class _Record:
    failures: int = 0
    first_failure: float = 0.0
    locked_until: float = 0.0


@dataclass
class AuthThrottle:
    """Failures per client address: answers slow down after a few, then the address is locked out.

    Shared by SMTP AUTH and POP3 logins. Held in memory: a restart forgets it, which only gives an
    attacker a fresh start of a few slow tries. An IPv6 client is counted per /64, as the MX's rate
    limits count it (``mailauth.limits.client_key``): one host usually has a whole /64, and keyed
    by the exact address it got a fresh budget with every address it rotated to (issue 12).
    """

    delay_after: int = 3
    lockout_after: int = 10
    lockout_seconds: float = 900.0
    base_delay: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)

    def locked(self, address: str) -> bool:
        key = client_key(address)
        record = self._records.get(key)
        if record is None:
            return False
        if record.locked_until and self.clock() >= record.locked_until:
            del self._records[key]
            return False
        return record.locked_until > 0

    def failure(self, address: str) -> float:
        """Record a failure; returns how long to wait before answering (0 when locked out)."""
        now = self.clock()
        record = self._records.setdefault(client_key(address), _Record(first_failure=now))
        if now - record.first_failure > self.lockout_seconds:
            record.failures = 0
            record.first_failure = now
        record.failures += 1
        if record.failures >= self.lockout_after:
            record.locked_until = now + self.lockout_seconds
            return 0.0
        if record.failures >= self.delay_after:
            return min(
                self.base_delay * (record.failures - self.delay_after + 1), 5 * self.base_delay
            )
        return 0.0

    def success(self, address: str) -> None:
        self._records.pop(client_key(address), None)
