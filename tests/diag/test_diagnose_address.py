"""``todoku diagnose ADDRESS`` end to end: the real command, a loopback DNS server, fake MX servers.

Each test points ``[dns] nameservers`` at the loopback DNS server and ``delivery.port`` at the
port the fake MX servers share (on 127.0.0.2, 127.0.0.3, ...), then reads the JSON steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.queue.fakemx import FakeMx, fake_mxes, server_tls_context
from todoku.diag.delivery import connect_failure_step
from todoku.queue.model import Hop


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def configured(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, port: int, **top: Any
) -> TodokuServer:
    extra = f'[dns]\nnameservers = ["{dns_server.address}"]\n\n[delivery]\nport = {port}\n'
    return make_server(extra=extra, start=False, **top)


def diagnose(srv: TodokuServer, *args: str) -> tuple[int, dict[str, Any]]:
    result = srv.cli("diagnose", *args, "--json", "--timeout", "2", check=False)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["steps"] if s["name"] == name)


@pytest.fixture
def mx(dns_server: DnsServer) -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2") as (fake,):
        dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
        dns_server.add("mx1.remote.test", "A", "127.0.0.2")
        yield fake


def test_recipient_accepted_then_refused_with_550(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    srv = configured(make_server, dns_server, mx.port)
    status, report = diagnose(srv, "bob@remote.test")
    assert status == 0 and report["ok"] is True, report
    assert [s["name"] for s in report["steps"]] == [
        "syntax",
        "domain",
        "mx",
        "connect",
        "greeting",
        "ehlo",
        "starttls",
        "mail",
        "rcpt",
    ]
    assert "mx1.remote.test [127.0.0.2]" in step(report, "mx")["detail"]
    assert mx.messages == []  # no DATA was ever sent

    status, report = diagnose(srv, "unknown.person@remote.test")
    assert status == 1 and report["failed_step"] == "rcpt"
    rcpt = step(report, "rcpt")
    assert rcpt["reply_code"] == 550 and rcpt["enhanced"] == "5.1.1"
    assert rcpt["reason"] == "userunknown"
    assert "User unknown" in rcpt["detail"]
    assert "before the @" in rcpt["cause"]

    text = srv.cli("diagnose", "unknown.person@remote.test", "--lang", "ja", check=False)
    assert text.returncode == 1
    assert "[FAIL] RCPT TO" in text.stdout and "結論" in text.stdout


def test_mx_refusing_connections(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    dns_server.add("down.test", "MX", "10 mx.down.test.")
    dns_server.add("mx.down.test", "A", "127.0.0.3")  # nothing listens there on mx.port
    srv = configured(make_server, dns_server, mx.port)
    status, report = diagnose(srv, "bob@down.test")
    assert status == 1 and report["failed_step"] == "connect"
    connect = step(report, "connect")
    assert "refused" in connect["detail"].lower()
    assert "refused the connection" in connect["cause"]


def test_mx_that_never_greets(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.4", mode="timeout") as (blackhole,):
        dns_server.add("silent.test", "MX", "10 mx.silent.test.")
        dns_server.add("mx.silent.test", "A", "127.0.0.4")
        srv = configured(make_server, dns_server, blackhole.port)
        status, report = diagnose(srv, "bob@silent.test")
    assert status == 1 and report["failed_step"] == "greeting"
    greeting = step(report, "greeting")
    assert "timed out" in greeting["detail"]
    assert "never greeted" in greeting["cause"] and "587" in greeting["remedy"]


def test_connect_timeout_on_port_25_is_explained_as_provider_blocking() -> None:
    hops = [
        (Hop("mx1.remote.test", "192.0.2.1", 10), "timed out after 10 s", True),
        (Hop("mx2.remote.test", "192.0.2.2", 20), "timed out after 10 s", True),
    ]
    blocked = connect_failure_step("en", "remote.test", 25, 10, hops)
    assert "blocks outgoing port 25" in blocked.cause and "587" in blocked.remedy
    other_port = connect_failure_step("en", "remote.test", 2525, 10, hops)
    assert "provider" not in other_port.cause and "port 2525" in other_port.cause
    ja = connect_failure_step("ja", "remote.test", 25, 10, hops)
    assert "OP25B" in ja.cause and "587" in ja.remedy


def test_no_mx_uses_the_domain_address(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    dns_server.add("plain.test", "A", "127.0.0.2")
    srv = configured(make_server, dns_server, mx.port)
    status, report = diagnose(srv, "bob@plain.test")
    assert status == 0, report
    assert "implicit MX" in step(report, "mx")["detail"]
    assert step(report, "rcpt")["status"] == "ok"


def test_nxdomain_suggests_the_likely_domain(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    srv = configured(make_server, dns_server, 25)
    status, report = diagnose(srv, "taro@gmial.com")
    assert status == 1 and report["failed_step"] == "domain"
    domain = step(report, "domain")
    assert domain["reason"] == "hostunknown" and "NXDOMAIN" in domain["detail"]
    assert "gmail.com" in domain["cause"] + domain["remedy"]
    assert ("gmial.com", "MX") in dns_server.queries


def test_null_mx(make_server: Callable[..., TodokuServer], dns_server: DnsServer) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    srv = configured(make_server, dns_server, 25)
    status, report = diagnose(srv, "bob@nomail.test")
    assert status == 1 and report["failed_step"] == "mx"
    mx_step = step(report, "mx")
    assert mx_step["reason"] == "notaccept" and "null MX" in mx_step["detail"]


def test_mx_pointing_to_this_server(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    dns_server.add("loop.test", "MX", "10 mx.example.test.")  # our own hostname
    dns_server.add("mx.example.test", "A", "127.0.0.9")
    srv = configured(make_server, dns_server, 25)
    status, report = diagnose(srv, "bob@loop.test")
    assert status == 1 and report["failed_step"] == "mx"
    loop = step(report, "mx")
    assert "this server (mx.example.test)" in loop["cause"] and "`domains`" in loop["remedy"]


def test_mx_host_without_address(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    dns_server.add("dangling.test", "MX", "10 mx.nowhere.test.")
    srv = configured(make_server, dns_server, 25)
    status, report = diagnose(srv, "bob@dangling.test")
    assert status == 1 and report["failed_step"] == "mx"
    assert "mx.nowhere.test" in step(report, "mx")["cause"]


def test_bad_syntax_and_usage(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
    srv = configured(make_server, dns_server, 25)
    status, report = diagnose(srv, "not an address")
    assert status == 1 and report["failed_step"] == "syntax"
    assert dns_server.queries == []
    both = srv.cli("diagnose", "bob@remote.test", "--self", check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr


def test_starttls_to_the_mx_is_used_and_reported(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    with fake_mxes("127.0.0.5", tls_context=server_tls_context(tmp_path)) as (tls_mx,):
        dns_server.add("secure.test", "MX", "10 mx.secure.test.")
        dns_server.add("mx.secure.test", "A", "127.0.0.5")
        srv = configured(make_server, dns_server, tls_mx.port)
        status, report = diagnose(srv, "bob@secure.test")
    assert status == 0, report
    starttls = step(report, "starttls")
    assert starttls["status"] == "ok" and starttls["detail"].startswith("TLSv1.")
    assert [s["name"] for s in report["steps"]].count("ehlo") == 2  # RFC 3207 §4.2: EHLO again
