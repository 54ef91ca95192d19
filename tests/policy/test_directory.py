from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from todoku.policy.auth import AuthThrottle, hash_password, verify_password
from todoku.policy.directory import Directory
from todoku.proto.smtp.address import Address, parse_mailbox
from todoku.store.sqlite_backend import SqliteBackend


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    made = SqliteBackend.open(tmp_path, ("example.test", "example.org"))
    yield made
    await made.close()


def addr(text: str) -> Address:
    return parse_mailbox(text)


async def test_users_aliases_forwarding_and_cycles(backend: SqliteBackend) -> None:
    store = backend.directory
    await store.add_user("alice@example.test", "h")
    await store.add_user("bob@example.test", "h")
    await store.add_alias("team@example.test", "alice@example.test")
    await store.add_alias("team@example.test", "bob@example.test")
    await store.add_alias("team@example.test", "partner@elsewhere.test")
    await store.add_alias("loop1@example.test", "loop2@example.test")
    await store.add_alias("loop2@example.test", "loop1@example.test")
    directory = Directory(backend.directory, ("example.test", "example.org"))
    team = await directory.resolve(addr("Team@Example.Test"))
    assert team.mailboxes == ("alice@example.test", "bob@example.test")
    assert team.remote == ("partner@elsewhere.test",)
    assert not (await directory.resolve(addr("loop1@example.test"))).found
    assert not (await directory.resolve(addr("nobody@example.test"))).found
    assert (await directory.resolve(addr("ALICE@example.test"))).mailboxes == (
        "alice@example.test",
    )


async def test_postmaster_always_resolves(backend: SqliteBackend) -> None:
    store = backend.directory
    directory = Directory(backend.directory, ("example.test", "example.org"))
    assert (await directory.resolve(addr("postmaster@example.org"))).mailboxes == (
        "postmaster@example.test",
    )
    assert (await directory.resolve(Address("postmaster", ""))).mailboxes == (
        "postmaster@example.test",
    )
    await store.add_user("admin@example.test", "h")
    await store.add_alias("postmaster@example.test", "admin@example.test")
    assert (await directory.resolve(addr("postmaster@example.org"))).mailboxes == (
        "admin@example.test",
    )


async def test_may_send_as(backend: SqliteBackend) -> None:
    store = backend.directory
    await store.add_user("alice@example.test", "h")
    await store.add_user("bob@example.test", "h")
    await store.add_alias("sales@example.test", "alice@example.test")
    directory = Directory(backend.directory, ("example.test",))
    assert await directory.may_send_as("alice@example.test", addr("Alice@EXAMPLE.test"))
    assert await directory.may_send_as("alice@example.test", addr("sales@example.test"))
    assert not await directory.may_send_as("bob@example.test", addr("sales@example.test"))
    assert not await directory.may_send_as("alice@example.test", addr("alice@elsewhere.test"))
    assert await directory.may_send_as("alice@example.test", None)  # <> (bounces of her own)


def test_argon2id_hashes() -> None:
    hashed = hash_password("s3cret-password")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret-password")
    assert not verify_password(hashed, "wrong")
    assert not verify_password(None, "s3cret-password")
    assert not verify_password("garbage", "x")


def test_password_hashes_use_owasp_parameters_and_old_hashes_still_verify() -> None:
    from argon2 import PasswordHasher

    assert "$m=19456,t=2,p=1$" in hash_password("s3cret-password")
    made_with_library_defaults = PasswordHasher().hash("older-password")  # m=65536,t=3,p=4
    assert verify_password(made_with_library_defaults, "older-password")
    assert not verify_password(made_with_library_defaults, "wrong")


def test_throttle_slows_then_locks_and_expires() -> None:
    now = [1000.0]
    throttle = AuthThrottle(
        delay_after=2, lockout_after=4, lockout_seconds=60, base_delay=1.0, clock=lambda: now[0]
    )
    assert throttle.failure("192.0.2.1") == 0
    assert throttle.failure("192.0.2.1") == 1.0
    assert throttle.failure("192.0.2.1") == 2.0
    assert not throttle.locked("192.0.2.1")
    throttle.failure("192.0.2.1")
    assert throttle.locked("192.0.2.1")
    assert not throttle.locked("192.0.2.2")
    now[0] += 61
    assert not throttle.locked("192.0.2.1")
    throttle.failure("192.0.2.3")
    throttle.success("192.0.2.3")
    assert throttle.failure("192.0.2.3") == 0


async def test_postmaster_is_only_the_exact_local_part(backend: SqliteBackend) -> None:
    """RFC 5321 §4.5.1 (issue 12): a quoted local part that starts with "postmaster@" is an
    unknown user, not postmaster; postmaster itself resolves in any case."""
    store = backend.directory
    await store.add_user("admin@example.test", "h")
    await store.add_alias("postmaster@example.test", "admin@example.test")
    await store.add_alias("postmaster@example.test", "admin@remote.test")
    directory = Directory(backend.directory, ("example.test",))
    assert (await directory.resolve(addr("PostMaster@example.test"))).remote == (
        "admin@remote.test",
    )
    assert (await directory.resolve(addr('"postmaster"@example.test'))).mailboxes == (
        "admin@example.test",
    )
    assert await directory.may_send_as("admin@example.test", addr("postmaster@example.test"))
    for text in (
        '"postmaster@anything"@example.test',
        '"postmaster@(Authenticated sender: x)"@example.test',
        '"POSTMASTER@example.test"@example.test',
    ):
        assert not (await directory.resolve(addr(text))).found, text
    assert not await directory.may_send_as(
        "admin@example.test", addr('"postmaster@x"@example.test')
    )
