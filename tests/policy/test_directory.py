from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from todoku.policy.auth import AuthThrottle, hash_password, verify_password
from todoku.policy.directory import Directory
from todoku.proto.smtp.address import Address, parse_mailbox
from todoku.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path)
    yield s
    s.close()


def addr(text: str) -> Address:
    return parse_mailbox(text)


def test_users_aliases_forwarding_and_cycles(store: SqliteStore) -> None:
    store.add_user("alice@example.test", "h")
    store.add_user("bob@example.test", "h")
    store.add_alias("team@example.test", "alice@example.test")
    store.add_alias("team@example.test", "bob@example.test")
    store.add_alias("team@example.test", "partner@elsewhere.test")
    store.add_alias("loop1@example.test", "loop2@example.test")
    store.add_alias("loop2@example.test", "loop1@example.test")
    directory = Directory(store, ("example.test", "example.org"))
    team = directory.resolve(addr("Team@Example.Test"))
    assert team.mailboxes == ("alice@example.test", "bob@example.test")
    assert team.remote == ("partner@elsewhere.test",)
    assert not directory.resolve(addr("loop1@example.test")).found
    assert not directory.resolve(addr("nobody@example.test")).found
    assert directory.resolve(addr("ALICE@example.test")).mailboxes == ("alice@example.test",)


def test_postmaster_always_resolves(store: SqliteStore) -> None:
    directory = Directory(store, ("example.test", "example.org"))
    assert directory.resolve(addr("postmaster@example.org")).mailboxes == (
        "postmaster@example.test",
    )
    assert directory.resolve(Address("postmaster", "")).mailboxes == ("postmaster@example.test",)
    store.add_user("admin@example.test", "h")
    store.add_alias("postmaster@example.test", "admin@example.test")
    assert directory.resolve(addr("postmaster@example.org")).mailboxes == ("admin@example.test",)


def test_may_send_as(store: SqliteStore) -> None:
    store.add_user("alice@example.test", "h")
    store.add_user("bob@example.test", "h")
    store.add_alias("sales@example.test", "alice@example.test")
    directory = Directory(store, ("example.test",))
    assert directory.may_send_as("alice@example.test", addr("Alice@EXAMPLE.test"))
    assert directory.may_send_as("alice@example.test", addr("sales@example.test"))
    assert not directory.may_send_as("bob@example.test", addr("sales@example.test"))
    assert not directory.may_send_as("alice@example.test", addr("alice@elsewhere.test"))
    assert directory.may_send_as("alice@example.test", None)  # <> (bounces of her own)


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


def test_postmaster_is_only_the_exact_local_part(store: SqliteStore) -> None:
    """RFC 5321 §4.5.1 (issue 12): a quoted local part that starts with "postmaster@" is an
    unknown user, not postmaster; postmaster itself resolves in any case."""
    store.add_user("admin@example.test", "h")
    store.add_alias("postmaster@example.test", "admin@example.test")
    store.add_alias("postmaster@example.test", "admin@remote.test")
    directory = Directory(store, ("example.test",))
    assert directory.resolve(addr("PostMaster@example.test")).remote == ("admin@remote.test",)
    assert directory.resolve(addr('"postmaster"@example.test')).mailboxes == ("admin@example.test",)
    assert directory.may_send_as("admin@example.test", addr("postmaster@example.test"))
    for text in (
        '"postmaster@anything"@example.test',
        '"postmaster@(Authenticated sender: x)"@example.test',
        '"POSTMASTER@example.test"@example.test',
    ):
        assert not directory.resolve(addr(text)).found, text
    assert not directory.may_send_as("admin@example.test", addr('"postmaster@x"@example.test'))
