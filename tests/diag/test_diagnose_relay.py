"""``todoku diagnose ADDRESS`` with a ``[[relay]]`` (issue 15): the real command follows the relay
(a smarthost on todoku's server core with a trustme CA); without one, a port-25 timeout ends with
the block to add."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.queue.fakerelay import RELAY_NAME, FakeRelay, RelayCa, make_ca, threaded_relay
from todoku.diag.delivery import connect_failure_step
from todoku.queue.model import Hop

SECRET = "relay-pass-123"


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add(RELAY_NAME, "A", "127.0.0.1")
        yield server


def relayed(
    make_server: Callable[..., TodokuServer],
    dns: DnsServer,
    ca: RelayCa,
    relay: FakeRelay,
    password: str,
    tmp_path: Path,
) -> TodokuServer:
    extra = (
        f'[dns]\nnameservers = ["{dns.address}"]\n\n[[relay]]\ndomains = ["*"]\n'
        f'host = "{RELAY_NAME}:{relay.port}"\ntls = "starttls"\nuser = "me@provider.test"\n'
        f'password_file = "relay.secret"\nca_file = "{ca.ca_file}"\n'
    )
    srv = make_server(extra=extra, start=False)
    secret = srv.root / "relay.secret"
    secret.write_text(password + "\n")
    os.chmod(secret, 0o600)
    return srv


def diagnose(srv: TodokuServer, *args: str) -> tuple[int, dict[str, Any], str]:
    result = srv.cli("diagnose", *args, "--json", "--timeout", "3", check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def test_diagnose_follows_the_relay_and_checks_the_login(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    ca = make_ca(str(tmp_path))
    with threaded_relay(ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}) as relay:
        good = relayed(make_server, dns_server, ca, relay, SECRET, tmp_path)
        status, report, _ = diagnose(good, "bob@remote.test")
        assert status == 0, report
        names = [s["name"] for s in report["steps"]]
        assert names[:2] == ["route", "relay"] and names[-3:] == ["login", "mail", "rcpt"]
        assert "relay[0]" in report["steps"][0]["detail"]
        assert "bob@remote.test" in report["steps"][-1]["detail"]
        assert relay.messages == []  # never DATA

        bad = relayed(make_server, dns_server, ca, relay, "wrong", tmp_path)
        status, report, shown = diagnose(bad, "bob@remote.test")
        assert status == 1 and report["failed_step"] == "login"
        assert "535" in next(s for s in report["steps"] if s["name"] == "login")["detail"]
        assert "wrong" not in shown and SECRET not in shown


def test_diagnose_refuses_a_relay_whose_certificate_names_another_host(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    ca = make_ca(str(tmp_path))
    with threaded_relay(
        ca.server_context("imposter.test"), users={"me@provider.test": SECRET}
    ) as relay:
        srv = relayed(make_server, dns_server, ca, relay, SECRET, tmp_path)
        status, report, _ = diagnose(srv, "bob@remote.test")
    assert status == 1 and report["failed_step"] == "certificate"
    assert relay.logins == []


def test_port_25_timeout_without_a_relay_prints_the_block_to_add() -> None:
    hops = [(Hop("mx1.remote.test", "192.0.2.1", 10), "timed out after 10 s", True)]
    step = connect_failure_step("en", "remote.test", 25, 10, hops)
    assert "[[relay]]" in step.remedy and 'host = "smtp.your-provider.example:587"' in step.remedy
    assert 'password_file = "relay.secret"' in step.remedy
    configured = connect_failure_step("en", "remote.test", 25, 10, hops, relays=1)
    assert "[[relay]]" in configured.remedy and "host =" not in configured.remedy
    assert "[[relay]]" not in connect_failure_step("en", "remote.test", 2525, 10, hops).remedy
