"""``todoku diagnose --submission`` against a real ``todoku serve`` on loopback.

The server under test has its self-signed certificate, so every run also shows the
certificate warning a mail program would give; the remaining steps still run.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import PASSWORD, TodokuServer

USER = "alice@example.test"


def diagnose(
    srv: TodokuServer, port: int, *args: str, password: str = PASSWORD, lang: str = "en"
) -> tuple[int, dict[str, Any]]:
    result = srv.cli(
        "diagnose",
        "--submission",
        f"127.0.0.1:{port}",
        "--user",
        USER,
        "--password-stdin",
        "--json",
        "--timeout",
        "5",
        "--lang",
        lang,
        *args,
        input=password + "\n",
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert password not in result.stdout  # the password is never shown
    return result.returncode, json.loads(result.stdout)


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["steps"] if s["name"] == name)


def test_good_login_with_starttls_and_with_implicit_tls(server: TodokuServer) -> None:
    status, report = diagnose(server, server.ports["submission"])
    assert status == 0 and report["ok"] is True, report
    names = [s["name"] for s in report["steps"]]
    assert names == [
        "connect",
        "greeting",
        "ehlo",
        "starttls",
        "certificate",
        "ehlo",
        "auth",
        "login",
        "mail",
        "rcpt",
    ]
    certificate = step(report, "certificate")
    assert certificate["status"] == "warn" and "self-signed" in certificate["detail"]
    assert "PLAIN" in step(report, "auth")["detail"]
    assert step(report, "login")["detail"].startswith(f"{USER}: 235")
    assert "fix the warning" in report["verdict"]

    # The test's submissions port is not 465: auto mode waits for a plain greeting, gets none,
    # and tries TLS from the first byte (issue 16: it used to time out and stop there).
    status, report = diagnose(server, server.ports["submissions"])
    assert status == 0, report
    assert [s["name"] for s in report["steps"]][:4] == ["connect", "tls", "certificate", "greeting"]
    assert "tried after no plain-text greeting" in step(report, "tls")["detail"]
    # Told STARTTLS, it says the port expects TLS from the start.
    status, report = diagnose(
        server, server.ports["submissions"], "--timeout", "2", "--tls", "starttls"
    )
    assert status == 1 and report["failed_step"] == "greeting"
    assert "SSL/TLS" in step(report, "greeting")["remedy"]

    status, report = diagnose(server, server.ports["submissions"], "--tls", "implicit")
    assert status == 0, report
    assert [s["name"] for s in report["steps"]][:4] == ["connect", "tls", "certificate", "greeting"]
    assert step(report, "rcpt")["status"] == "ok"


def test_wrong_password(server: TodokuServer) -> None:
    status, report = diagnose(
        server, server.ports["submissions"], "--tls", "implicit", password="not the password"
    )
    assert status == 1 and report["failed_step"] == "login"
    login = step(report, "login")
    assert "535" in login["detail"] and "password" in login["cause"]
    text = server.cli(
        "diagnose",
        "--submission",
        f"127.0.0.1:{server.ports['submissions']}",
        "--user",
        USER,
        "--password-stdin",
        "--lang",
        "ja",
        "--tls",
        "implicit",
        input="not the password\n",
        check=False,
    )
    assert text.returncode == 1 and "[FAIL] ログイン" in text.stdout and "パスワード" in text.stdout


def test_starttls_port_used_without_tls(server: TodokuServer) -> None:
    status, report = diagnose(server, server.ports["submission"], "--tls", "none")
    assert status == 1 and report["failed_step"] == "auth"
    auth = step(report, "auth")
    assert "STARTTLS" in auth["remedy"] and "unencrypted" in auth["cause"]
    assert "530" in auth["detail"]


def test_implicit_tls_expected_but_port_speaks_plain(server: TodokuServer) -> None:
    status, report = diagnose(server, server.ports["submission"], "--tls", "implicit")
    assert status == 1 and report["failed_step"] == "tls"
    assert "STARTTLS" in step(report, "tls")["remedy"]


def test_sender_not_owned(server: TodokuServer) -> None:
    status, report = diagnose(server, server.ports["submission"], "--from", "bob@example.org")
    assert status == 1 and report["failed_step"] == "mail"
    mail = step(report, "mail")
    assert mail["reply_code"] == 553 and mail["reason"] == "rejected"
    assert "not one your account may send as" in mail["cause"]


def test_wrong_port(server: TodokuServer) -> None:
    # The incoming ports: POP3 greets at once, POP3S after the TLS that auto mode tries.
    for service in ("pop3", "pop3s"):
        status, report = diagnose(server, server.ports[service])
        assert status == 1 and report["failed_step"] == "greeting", report
        failed = step(report, "greeting")
        assert "is a POP3 server, for reading mail" in failed["cause"]
        assert failed["detail"].startswith("+OK")
        assert "block list" not in failed["cause"] + failed["remedy"]
        # The verdict names the step without an empty reason placeholder.
        assert report["verdict"].startswith('Mail cannot be sent: the check stopped at "greeting".')
