"""The ``Directory`` contract (store/directory.py): every backend passes these unchanged."""

from __future__ import annotations

import asyncio

import pytest

from tests.store.contract.conftest import DOMAINS
from todoku.store.backend import Storage
from todoku.store.directory import UserExists

ALICE = "alice@example.test"
BOB = "bob@example.test"


async def test_domains_are_the_configured_ones_primary_first(storage: Storage) -> None:
    assert await storage.directory.domains() == DOMAINS


async def test_a_user_is_added_found_listed_and_removed(storage: Storage) -> None:
    d = storage.directory
    assert await d.get_user(ALICE) is None
    await d.add_user("Alice@Example.TEST", "hash-1")
    await d.add_user(BOB, "hash-2")
    user = await d.get_user("ALICE@example.test")
    assert user is not None
    assert (user.address, user.password_hash, user.admin) == (ALICE, "hash-1", False)
    assert user.created_at > 0
    assert [u.address for u in await d.users()] == [ALICE, BOB]
    assert await d.delete_user(ALICE) is True
    assert await d.delete_user(ALICE) is False
    assert await d.get_user(ALICE) is None
    assert [u.address for u in await d.users()] == [BOB]


async def test_adding_an_existing_user_is_refused_and_changes_nothing(storage: Storage) -> None:
    d = storage.directory
    await d.add_user(ALICE, "first")
    with pytest.raises(UserExists):
        await d.add_user(ALICE.upper(), "second")
    user = await d.get_user(ALICE)
    assert user is not None and user.password_hash == "first"


async def test_set_password_changes_only_that_user(storage: Storage) -> None:
    d = storage.directory
    await d.add_user(ALICE, "old")
    await d.add_user(BOB, "bobs")
    assert await d.set_password(ALICE.upper(), "new") is True
    assert await d.set_password("nobody@example.test", "x") is False
    alice, bob = await d.users()
    assert (alice.password_hash, bob.password_hash) == ("new", "bobs")


async def test_admin_flag_is_off_by_default_granted_and_revoked(storage: Storage) -> None:
    d = storage.directory
    await d.add_user(ALICE, "h")
    await d.add_user(BOB, "h", admin=True)
    assert await d.is_admin(ALICE) is False
    assert await d.is_admin(BOB.upper()) is True
    assert await d.set_admin(ALICE, True) is True
    assert await d.is_admin(ALICE) is True
    assert [u.admin for u in await d.users()] == [True, True]
    assert await d.set_admin(BOB, False) is True
    assert await d.is_admin(BOB) is False
    user = await d.get_user(BOB)
    assert user is not None and user.admin is False


async def test_admin_of_an_unknown_address_is_no_and_cannot_be_granted(storage: Storage) -> None:
    d = storage.directory
    assert await d.is_admin("nobody@example.test") is False
    assert await d.set_admin("nobody@example.test", True) is False
    assert await d.get_user("nobody@example.test") is None


async def test_aliases_lead_to_sorted_targets_case_blind(storage: Storage) -> None:
    d = storage.directory
    await d.add_alias("Sales@example.test", "bob@example.test")
    await d.add_alias("sales@example.test", "Alice@Example.test")
    await d.add_alias("sales@example.test", "alice@example.test")  # again: no change
    await d.add_alias("info@example.test", "someone@remote.test")
    assert await d.alias_targets("SALES@example.test") == [ALICE, BOB]
    assert await d.alias_targets("nobody@example.test") == []
    assert [(a.source, a.target) for a in await d.aliases()] == [
        ("info@example.test", "someone@remote.test"),
        ("sales@example.test", ALICE),
        ("sales@example.test", BOB),
    ]


async def test_deleting_one_alias_target_or_all(storage: Storage) -> None:
    d = storage.directory
    for target in (ALICE, BOB, "carol@example.test"):
        await d.add_alias("team@example.test", target)
    assert await d.delete_alias("team@example.test", BOB.upper()) == 1
    assert await d.delete_alias("team@example.test", BOB) == 0
    assert await d.alias_targets("team@example.test") == [ALICE, "carol@example.test"]
    assert await d.delete_alias("TEAM@example.test") == 2
    assert await d.alias_targets("team@example.test") == []
    assert await d.aliases() == []


async def test_users_and_aliases_are_separate(storage: Storage) -> None:
    d = storage.directory
    await d.add_user(ALICE, "h")
    await d.add_alias(ALICE, BOB)
    assert await d.delete_user(ALICE) is True
    assert await d.alias_targets(ALICE) == [BOB]  # an account's removal leaves its aliases


async def test_many_lookups_at_once_each_get_their_own_answer(storage: Storage) -> None:
    d = storage.directory
    for n in range(20):
        await d.add_user(f"user{n}@example.test", f"hash{n}")
    users = await asyncio.gather(*(d.get_user(f"user{n % 20}@example.test") for n in range(200)))
    assert [u.password_hash if u else None for u in users] == [f"hash{n % 20}" for n in range(200)]
