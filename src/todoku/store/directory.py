"""``Directory``: who has an account here, and where addresses lead (issue 14).

Users (a login with a password hash, and whether they administer the server), aliases (an
address that leads to one or more others) and the local domains. Addresses are compared without
regard to case: a backend stores and returns them lower-cased.

Every method is ``async``: a backend does its blocking work (a file, a network round trip) off
the event loop, since SMTP's RCPT and AUTH and POP3's login wait on these lookups. Resolution of
aliases to mailboxes (depth, cycles, postmaster) is policy, not storage: ``policy.directory``.
"""

from __future__ import annotations

from typing import Protocol

from todoku.store.api import Alias, User


class UserExists(ValueError):
    """``add_user`` for an address that already has an account."""


class Directory(Protocol):
    async def domains(self) -> tuple[str, ...]:
        """The domains whose mail is delivered here, first the primary one."""
        ...

    # users
    async def add_user(self, address: str, password_hash: str, *, admin: bool = False) -> None:
        """A new account; ``UserExists`` when the address has one."""
        ...

    async def get_user(self, address: str) -> User | None: ...
    async def users(self) -> list[User]:
        """Every account, by address."""
        ...

    async def set_password(self, address: str, password_hash: str) -> bool:
        """False when there is no such user."""
        ...

    async def delete_user(self, address: str) -> bool:
        """False when there is no such user. Their mail and aliases stay."""
        ...

    async def is_admin(self, address: str) -> bool:
        """Whether the user may administer the server; False for an unknown address."""
        ...

    async def set_admin(self, address: str, admin: bool) -> bool:
        """Grant (or with ``admin=False`` revoke) administration; False when no such user."""
        ...

    # aliases
    async def add_alias(self, source: str, target: str) -> None:
        """``source`` also leads to ``target`` (adding one that exists changes nothing)."""
        ...

    async def delete_alias(self, source: str, target: str | None = None) -> int:
        """Remove one target of ``source`` (or all of them with None); how many went."""
        ...

    async def aliases(self) -> list[Alias]:
        """Every alias, by source then target."""
        ...

    async def alias_targets(self, source: str) -> list[str]:
        """Where ``source`` leads, sorted; [] when it is no alias."""
        ...
