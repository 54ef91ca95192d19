"""``todoku user add --admin`` and ``todoku user admin [--revoke]``: the administrator role the
web admin pages ask for (users.admin)."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import PASSWORD, TodokuServer


def test_the_admin_role_from_the_command_line(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(start=False)
    added = server.cli(
        "user", "add", "--admin", "root@example.test", "--password-stdin", input=PASSWORD + "\n"
    )
    assert added.stdout.strip() == "added root@example.test (administrator)"
    server.add_user("alice@example.test")
    listing = server.cli("user", "list").stdout.splitlines()
    assert [line.endswith("\tadministrator") for line in sorted(listing)] == [False, True]
    assert "administrator" in server.cli("user", "admin", "alice@example.test").stdout
    revoked = server.cli("user", "admin", "--revoke", "root@example.test").stdout
    assert "no longer an administrator" in revoked
    listing = dict(line.split("\t", 1) for line in server.cli("user", "list").stdout.splitlines())
    assert listing["alice@example.test"].endswith("administrator")
    assert not listing["root@example.test"].endswith("administrator")
    unknown = server.cli("user", "admin", "nobody@example.test", check=False)
    assert unknown.returncode == 1 and "no such user" in unknown.stderr
