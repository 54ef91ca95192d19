from __future__ import annotations

import re
from pathlib import Path

import pytest

from todoku.config.load import (
    ConfigError,
    config_from_dict,
    load_config,
    parse_duration,
    parse_listen,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("25MiB", 25 * 1024 * 1024),
        ("10MB", 10_000_000),
        ("4096", 4096),
        (512, 512),
        ("1.5KiB", 1536),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text, "k") == size


@pytest.mark.parametrize("text", ["", "big", "-1", "0", "10 parsecs", True])
def test_bad_sizes_name_the_key(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^limits\.max_message_size: "):
        parse_size(text, "limits.max_message_size")


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("4h", 14400), ("5d", 432000), ("1s", 1), ("0", 0), (30, 30)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "k") == seconds


def test_listen_addresses() -> None:
    assert str(parse_listen("127.0.0.1:10025", "k")) == "127.0.0.1:10025"
    six = parse_listen("[::1]:25", "k")
    assert (six.host, six.port, six.is_loopback) == ("::1", 25, True)
    with pytest.raises(ConfigError, match="listen.smtp: expected"):
        parse_listen("10025", "listen.smtp")
    with pytest.raises(ConfigError, match="port out of range"):
        parse_listen("127.0.0.1:70000", "listen.smtp")


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = config_from_dict({"domains": ["Example.Test."], "data_dir": "data"}, tmp_path)
    assert config.domains == ("example.test",)
    assert config.data_dir == tmp_path / "data"
    assert config.tls.self_signed and config.tls.cert == tmp_path / "data" / "tls" / "cert.pem"
    assert config.max_message_size == 25 * 1024 * 1024
    assert config.delivery.retry[0] == 300 and config.delivery.max_lifetime == 5 * 86400
    assert config.listen == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"domains": ["a.test"], "listen": {"smtpd": "127.0.0.1:25"}}, "listen.smtpd: unknown key"),
        (
            {"domains": ["a.test"], "limits": {"max_recipients": 0}},
            "limits.max_recipients: expected a whole number",
        ),
        ({"domains": ["a.test"], "hostname": "bad host"}, "hostname: not a valid host name"),
        ({"domains": []}, "domains: expected a list"),
        ({"domains": ["a.test"], "delivery": {"retry": "5m"}}, "delivery.retry: expected a list"),
        (
            {"domains": ["a.test"], "auth": {"allow_plaintext_on_loopback": "yes"}},
            "auth.allow_plaintext_on_loopback: expected true or false",
        ),
        ({"domains": ["a.test"], "tls": {"cert": "c.pem"}}, "tls.cert: no such file"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, tmp_path)
    assert str(info.value).startswith(message)


def test_connection_limits(tmp_path: Path) -> None:
    base = {"domains": ["example.test"]}
    default = config_from_dict(base, tmp_path)
    assert (default.max_connections, default.max_connections_per_ip) == (None, 50)
    limits = {"max_connections": 300, "max_connections_per_ip": 0}
    config = config_from_dict(base | {"limits": limits}, tmp_path)
    assert (config.max_connections, config.max_connections_per_ip) == (300, 0)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_connections", -1, "limits.max_connections: expected a whole number >= 1, got -1"),
        ("max_connections", 0, "limits.max_connections: expected a whole number >= 1, got 0"),
        (
            "max_connections",
            "many",
            "limits.max_connections: expected a whole number >= 1, got 'many'",
        ),
        (
            "max_connections_per_ip",
            -3,
            "limits.max_connections_per_ip: expected a whole number >= 0, got -3",
        ),
        (
            "max_connections_per_ip",
            2.5,
            "limits.max_connections_per_ip: expected a whole number >= 0, got 2.5",
        ),
        (
            "max_connections_per_ip",
            True,
            "limits.max_connections_per_ip: expected a whole number >= 0, got True",
        ),
    ],
)
def test_bad_connection_limits_name_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"domains": ["example.test"], "limits": {key: value}}, tmp_path)
    assert str(caught.value) == message


def test_tlsrpt_defaults_and_errors(tmp_path: Path) -> None:
    base = 'hostname = "mx.example.org"\ndomains = ["example.org", "example.net"]\n'
    path = tmp_path / "todoku.toml"
    path.write_text(base)
    settings = load_config(path).tlsrpt
    assert settings.enabled
    assert settings.organization == "example.org"
    assert settings.contact == "postmaster@example.org"
    path.write_text(base + '[tlsrpt]\nenabled = false\norganization = "Example"\n')
    assert not load_config(path).tlsrpt.enabled
    for bad, key in (
        ('contact = "not an address"', "tlsrpt.contact"),
        ('contact = "a@b@"', "tlsrpt.contact"),
        ('organization = ""', "tlsrpt.organization"),
        ("send = true", "tlsrpt.send"),
    ):
        path.write_text(base + f"[tlsrpt]\n{bad}\n")
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config(path)
