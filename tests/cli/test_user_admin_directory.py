"""Issue 14: administrators. ``todoku user add --admin`` and ``todoku user admin [--revoke]``,
run as the administrator would (the ``todoku`` command in a subprocess), and what they leave
in the store (read through the ``Directory`` interface)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli.test_cli_usage import todoku
from todoku.store.sqlite_backend import SqliteBackend

ALICE = "alice@example.test"
BOB = "bob@example.test"


def admins(data: Path) -> dict[str, bool]:
    async def read() -> dict[str, bool]:
        backend = SqliteBackend.open(data, ("example.test",))
        try:
            return {
                u.address: await backend.directory.is_admin(u.address)
                for u in await backend.directory.users()
            }
        finally:
            await backend.close()

    return asyncio.run(read())


def test_grant_list_and_revoke_administration(tmp_path: Path) -> None:
    config = tmp_path / "todoku.toml"
    data = tmp_path / "data"
    config.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{data}"\n'
    )
    c = str(config)
    added = todoku(
        tmp_path,
        "user",
        "add",
        ALICE,
        "--password-stdin",
        "--admin",
        "--config",
        c,
        stdin="password123\n",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added {ALICE} (administrator)"
    plain = todoku(
        tmp_path, "user", "add", BOB, "--password-stdin", "--config", c, stdin="password456\n"
    )
    assert plain.returncode == 0 and plain.stdout.strip() == f"added {BOB}"
    assert admins(data) == {ALICE: True, BOB: False}

    listed = todoku(tmp_path, "user", "list", "--config", c).stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == [ALICE, BOB]
    assert listed[0].endswith("\tadministrator") and "administrator" not in listed[1]

    granted = todoku(tmp_path, "user", "admin", "Bob@Example.test", "--config", c)
    assert granted.returncode == 0 and granted.stdout.strip() == f"{BOB}: administrator"
    revoked = todoku(tmp_path, "user", "admin", ALICE, "--revoke", "--config", c)
    assert revoked.stdout.strip() == f"{ALICE}: no longer an administrator"
    assert admins(data) == {ALICE: False, BOB: True}


def test_administration_for_no_such_user_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "todoku.toml"
    config.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    result = todoku(tmp_path, "user", "admin", "nobody@example.test", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "todoku: nobody@example.test: no such user (see 'todoku user list')"
    ]
    again = todoku(
        tmp_path,
        "user",
        "add",
        ALICE,
        "--password-stdin",
        "--config",
        str(config),
        stdin="password123\n",
    )
    assert again.returncode == 0
    twice = todoku(
        tmp_path,
        "user",
        "add",
        ALICE,
        "--password-stdin",
        "--admin",
        "--config",
        str(config),
        stdin="password123\n",
    )
    assert twice.returncode == 2 and "user already exists" in twice.stderr
    assert admins(tmp_path / "data") == {ALICE: False}
