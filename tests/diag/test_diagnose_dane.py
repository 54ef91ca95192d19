"""``todoku diagnose --self`` says whether outbound DANE is on: off unless ``[dns] dnssec`` declares
the resolver validating (issue 15), against the loopback DNS server with nothing published."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", 'DANE (RFC 7672) off: [dns] dnssec is not "validating"'),
        ('dnssec = "validating"', "DANE (RFC 7672) on:"),
    ],
)
def test_self_check_says_whether_dane_is_on(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, setting: str, expected: str
) -> None:
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n{setting}\n'
    srv = make_server(extra=extra, services=("smtp", "submission"), start=False)
    result = srv.cli("diagnose", "--self", "--timeout", "5", check=False)
    assert result.returncode == 1, result.stderr  # nothing published
    [line] = [line for line in result.stdout.splitlines() if "DANE" in line]
    assert expected in line
