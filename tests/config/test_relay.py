"""``[[relay]]`` tables (issue 15): what is accepted, and one line naming the key for the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from todoku.config import reload
from todoku.config.load import ConfigError, config_from_dict
from todoku.config.relay import PasswordError, read_password
from todoku.queue.routing import choose


def load(tmp_path: Path, *relays: dict[str, Any]) -> Any:
    return config_from_dict({"domains": ["example.test"], "relay": list(relays)}, tmp_path)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "relay.secret"
    path.write_text("s3cret\n")
    os.chmod(path, 0o600)
    return path


def test_a_full_table_and_the_defaults(tmp_path: Path, secret: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = load(
        tmp_path,
        {
            "domains": ["*"],
            "host": "smtp.provider.example:587",
            "user": "me@provider.example",
            "password_file": "relay.secret",
            "ca_file": "ca.pem",
            "fallback_after": 3,
        },
        {
            "domains": ["Outlook.com.", "*.onmicrosoft.com"],
            "host": "[2001:db8::1]:465",
            "tls": "implicit",
        },
    )
    first, second = config.relays
    assert (first.host, first.port, first.tls, first.fallback_after) == (
        "smtp.provider.example",
        587,
        "starttls",
        3,
    )
    assert first.password_file == secret and first.ca_file == tmp_path / "ca.pem"
    assert read_password(first) == "s3cret"
    assert "s3cret" not in repr(config)
    assert second.domains == ("outlook.com", "*.onmicrosoft.com")
    assert (second.host, second.address, second.user) == ("2001:db8::1", "[2001:db8::1]:465", None)
    assert config_from_dict({"domains": ["example.test"]}, tmp_path).relays == ()


def test_patterns_and_the_first_match_decides(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {"domains": ["outlook.com", "*.onmicrosoft.com"], "host": "a.example:587"},
        {"domains": ["*"], "host": "b.example:587", "fallback_after": 2},
    )
    ms, everything = config.relays
    assert choose(config.relays, "Outlook.COM", 0).relay is ms
    assert choose(config.relays, "x.y.onmicrosoft.com", 0).relay is ms
    # "*.x" is subdomains only: the bare name falls through to the next table.
    direct = choose(config.relays, "onmicrosoft.com", 1)
    assert direct.relay is None and "fallback_after = 2" in direct.why
    assert "1 failed attempt" in direct.why
    later = choose(config.relays, "onmicrosoft.com", 2)
    assert later.relay is everything and "after 2 failed direct attempt" in later.why
    assert choose((), "example.net", 9).why == "MX (no [[relay]] configured)"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"host": "smtp.example:587"}, r"^relay\[0\]\.domains: missing"),
        ({"domains": "*", "host": "smtp.example:587"}, r"^relay\[0\]\.domains: expected"),
        ({"domains": ["exa mple"], "host": "smtp.example:587"}, r"^relay\[0\]\.domains: not a"),
        ({"domains": ["*"]}, r"^relay\[0\]\.host: missing"),
        ({"domains": ["*"], "host": "smtp.example"}, r"^relay\[0\]\.host: the port is missing"),
        ({"domains": ["*"], "host": "smtp.example:smtp"}, r"^relay\[0\]\.host: not a port"),
        (
            {"domains": ["*"], "host": "smtp.example:587", "tls": "none"},
            r'^relay\[0\]\.tls: must be "starttls" \(port 587\) or "implicit"',
        ),
        (
            {"domains": ["*"], "host": "smtp.example:587", "user": "me"},
            r"^relay\[0\]\.password_file: missing",
        ),
        (
            {"domains": ["*"], "host": "smtp.example:587", "user": "me", "password_file": "nope"},
            r"^relay\[0\]\.password_file: no such file",
        ),
        (
            {"domains": ["*"], "host": "smtp.example:587", "ca_file": "nope.pem"},
            r"^relay\[0\]\.ca_file: no such file",
        ),
        (
            {"domains": ["*"], "host": "smtp.example:587", "fallback_after": -1},
            r"^relay\[0\]\.fallback_after: expected a whole number",
        ),
        (
            {"domains": ["*"], "host": "smtp.example:587", "relayhost": "x"},
            r"^relay\[0\]\.relayhost: unknown key",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, table)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_password_file_others_can_read_is_refused(
    tmp_path: Path, secret: Path, mode: int
) -> None:
    os.chmod(secret, mode)
    table = {
        "domains": ["*"],
        "host": "smtp.example:587",
        "user": "me",
        "password_file": "relay.secret",
    }
    with pytest.raises(
        ConfigError, match=r"^relay\[1\]\.password_file: .* readable by others .*chmod 600"
    ):
        load(tmp_path, {"domains": ["*"], "host": "a.example:25"}, table | {})
    with pytest.raises(ConfigError, match=r"^relay\[0\]\.password_file: "):
        load(tmp_path, table)


def test_the_password_is_read_anew_and_never_shown(tmp_path: Path, secret: Path) -> None:
    [relay] = load(
        tmp_path,
        {
            "domains": ["*"],
            "host": "smtp.example:587",
            "user": "me",
            "password_file": "relay.secret",
        },
    ).relays
    secret.write_text("changed\r\n")
    assert read_password(relay) == "changed"
    secret.write_text("two\nlines\n")
    with pytest.raises(PasswordError, match=r"^relay\[0\]\.password_file: .* one line$") as caught:
        read_password(relay)
    assert "two" not in str(caught.value)
    secret.unlink()
    with pytest.raises(PasswordError, match=r"^relay\[0\]\.password_file: cannot read"):
        read_password(relay)


def test_config_check_prints_one_line_and_exits_2(tmp_path: Path, secret: Path) -> None:
    os.chmod(secret, 0o644)
    path = tmp_path / "todoku.toml"
    path.write_text(
        'domains = ["example.test"]\n\n[[relay]]\ndomains = ["*"]\n'
        'host = "smtp.provider.example:587"\nuser = "me"\npassword_file = "relay.secret"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.count("relay[0].password_file: ") == 1 and "readable by others" in line
    assert "s3cret" not in result.stderr + result.stdout


def test_a_reload_applies_changed_relay_tables(tmp_path: Path) -> None:
    old = load(tmp_path, {"domains": ["*"], "host": "smtp.old.example:587"})
    new = load(tmp_path, {"domains": ["*"], "host": "smtp.new.example:465", "tls": "implicit"})
    [change] = reload.changes(old, new)
    assert change.key == "relay" and not change.needs_restart
    assert reload.keep_restart_keys(old, new).relays == new.relays
    assert "smtp.new.example" not in str(change)  # a table: said to have changed, not how
