"""Who may use the admin pages, and the user operations those pages make: the one place the web
side asks the user directory.

``Accounts`` is the narrow, async surface the pages need (the names are the user directory's).
``StoreAccounts`` serves it from the storage interface, each call in a worker thread so the
event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from todoku.store.api import Store, User


class Accounts(Protocol):
    async def get_user(self, address: str) -> User | None: ...
    async def users(self) -> list[User]: ...
    async def add_user(self, address: str, password_hash: str, *, admin: bool = False) -> None: ...
    async def set_password(self, address: str, password_hash: str) -> bool: ...
    async def is_admin(self, address: str) -> bool: ...
    async def set_admin(self, address: str, admin: bool) -> bool: ...


class AdminRoleUnavailable(RuntimeError):
    """This directory cannot change who is an administrator."""


class StoreAccounts:
    """Accounts from the storage interface. The administrator role: the ``postmaster`` user of
    a local domain (RFC 5321 §4.5.1's responsible person), until the user directory stores the
    role itself."""

    def __init__(self, store: Store, domains: tuple[str, ...]) -> None:
        self.store = store
        self.domains = domains

    async def get_user(self, address: str) -> User | None:
        return await asyncio.to_thread(self.store.get_user, address)

    async def users(self) -> list[User]:
        return await asyncio.to_thread(self.store.list_users)

    async def add_user(self, address: str, password_hash: str, *, admin: bool = False) -> None:
        if admin:
            raise AdminRoleUnavailable("the administrator role cannot be given here yet")
        await asyncio.to_thread(self.store.add_user, address, password_hash)

    async def set_password(self, address: str, password_hash: str) -> bool:
        return await asyncio.to_thread(self.store.set_password, address, password_hash)

    async def is_admin(self, address: str) -> bool:
        local, _, domain = address.lower().rpartition("@")
        if local != "postmaster" or domain not in self.domains:
            return False
        return await self.get_user(address.lower()) is not None

    async def set_admin(self, address: str, admin: bool) -> bool:
        raise AdminRoleUnavailable("the administrator role cannot be changed here yet")
