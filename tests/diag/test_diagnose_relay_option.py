"""``todoku diagnose --relay`` (issue 15): the configured smarthost's connection, TLS, login and
MAIL FROM, checked through the real command against a fake relay with a trustme CA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import TodokuServer
from tests.diag.test_diagnose_relay import SECRET, diagnose, dns_server, relayed
from tests.dnsserver import DnsServer
from tests.queue.fakerelay import RELAY_NAME, make_ca, threaded_relay

__all__ = ["dns_server"]  # the fixture, for pytest


def test_diagnose_relay_checks_tls_login_and_mail_from(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    ca = make_ca(str(tmp_path))
    with threaded_relay(ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}) as relay:
        good = relayed(make_server, dns_server, ca, relay, SECRET, tmp_path)
        status, report, _ = diagnose(good, "--relay")
        assert status == 0, report
        assert report["kind"] == "relay" and "relay[0]" in report["target"]
        names = [s["name"] for s in report["steps"]]
        assert names[0] == "relay" and names[-3:] == ["login", "mail", "rcpt"]
        mail = next(s for s in report["steps"] if s["name"] == "mail")
        assert "me@provider.test" in mail["detail"]  # the login is the default sender
        assert relay.messages == [] and relay.logins == [("me@provider.test", True)]
        assert relay.clear_text.upper().count(b"AUTH") == 0  # the login went over TLS

        bad = relayed(make_server, dns_server, ca, relay, "wrong", tmp_path)
        status, report, shown = diagnose(bad, "--relay")
        assert status == 1 and report["failed_step"] == "login"
        assert "wrong" not in shown and SECRET not in shown


def test_diagnose_relay_refuses_a_certificate_for_another_name(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    ca = make_ca(str(tmp_path))
    with threaded_relay(
        ca.server_context("imposter.test"), users={"me@provider.test": SECRET}
    ) as r:
        srv = relayed(make_server, dns_server, ca, r, SECRET, tmp_path)
        status, report, _ = diagnose(srv, "--relay")
    assert status == 1 and report["failed_step"] == "certificate"
    assert r.logins == []


def test_diagnose_relay_without_a_relay_is_a_usage_error(
    make_server: Callable[..., TodokuServer],
) -> None:
    srv = make_server(start=False)
    result = srv.cli("diagnose", "--relay", check=False)
    assert result.returncode == 2 and "no [[relay]]" in result.stderr
