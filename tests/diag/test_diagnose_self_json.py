"""Issue 16: ``todoku diagnose --self --json`` prints one JSON object (it printed the text
report), against the loopback DNS server with nothing published."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def test_self_check_as_json(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n'
    srv = make_server(extra=extra, services=("smtp", "submission"), start=False)
    result = srv.cli("diagnose", "--self", "--json", "--timeout", "5", check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["kind"] == "self" and report["ok"] is False
    assert report["target"] == "mx.example.test"
    purposes = {f["purpose"] for f in report["findings"]}
    assert {"mx", "spf", "dkim", "dmarc"} <= purposes
    mx = next(f for f in report["findings"] if f["purpose"] == "mx" and f["name"] == "example.test")
    assert mx["status"] == "missing" and mx["required"] is True and mx["explanation"]
    assert "missing or wrong" in report["verdict"]
