"""SIGHUP (issue 16): the configuration and the TLS files are read again without dropping a
session; a broken configuration leaves the running one in place; the log file is reopened
(rotation by rename); ``[log] format = "json"`` writes one JSON object per line.

A real ``todoku serve`` process, real sockets and smtplib clients; the signal is the real one.
"""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TodokuServer, client_tls_context, write_config
from tests.web.test_web_e2e import bound_ports
from todoku.net.tls import make_self_signed

SESSIONS = 10
MESSAGE = b"From: a@example.test\r\nTo: u@example.test\r\nSubject: reload\r\n\r\nbody\r\n"


def tls_extra(root: Path, limits: str = "", log: str = "") -> str:
    return f'[tls]\ncert = "{root}/cert.pem"\nkey = "{root}/key.pem"\n{limits}\n{log}'


def new_certificate(root: Path, hostname: str) -> bytes:
    """Write a new self-signed certificate and key; the certificate, DER-encoded."""
    make_self_signed(root / "cert.pem", root / "key.pem", hostname)
    return ssl.PEM_cert_to_DER_cert((root / "cert.pem").read_text())


def wait_for(read: Callable[[], str], text: str, count: int = 1, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = read()
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} time(s) in {timeout}s:\n{read()}")


def reader(path: Path) -> Callable[[], str]:
    """The text of ``path``, or "" while it does not exist (just after a rotation)."""
    return lambda: path.read_text() if path.exists() else ""


def hangup(server: TodokuServer) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)


def presented_certificate(port: int) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.starttls(context=client_tls_context())
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der


def started_session(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=15)
    client.ehlo("client.example")
    assert client.mail("a@remote.example")[0] == 250
    assert client.rcpt("u@example.test")[0] == 250
    return client


def test_reload_under_load(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(start=False, services=("smtp",))
    first = new_certificate(server.root, "mx.example.test")
    write_config(server.root, tls_extra(server.root), services=("smtp",))
    server.add_user("u@example.test")
    server.start()
    port = server.ports["smtp"]
    assert presented_certificate(port) == first

    clients = [started_session(port) for _ in range(SESSIONS)]
    tls_client = smtplib.SMTP("127.0.0.1", port, timeout=15)
    tls_client.starttls(context=client_tls_context())
    tls_client.ehlo("client.example")
    assert tls_client.mail("a@remote.example")[0] == 250
    assert tls_client.rcpt("u@example.test")[0] == 250

    # The new configuration: one recipient per message; and a renewed certificate.
    write_config(
        server.root, tls_extra(server.root, "[limits]\nmax_recipients = 1"), services=("smtp",)
    )
    renewed = new_certificate(server.root, "mx.example.test")
    assert renewed != first
    hangup(server)
    log = wait_for(server.log, "reloaded ")
    assert "reload: limits.max_recipients: 1000 -> 1" in log
    assert "tls.cert: loaded the new certificate" in log

    # Every session in progress goes on with what it started with: a second recipient, the
    # message, QUIT; none sees an error.
    for client in [*clients, tls_client]:
        assert client.rcpt("u@example.test")[0] == 250
        assert client.rcpt("u@example.test")[0] == 250
        code, reply = client.data(MESSAGE)
        assert code == 250, reply
        assert client.quit()[0] == 221

    # The next session has the new limit, and the next TLS session the new certificate.
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("client.example")
        assert client.mail("a@remote.example")[0] == 250
        assert client.rcpt("u@example.test")[0] == 250
        assert client.rcpt("u@example.test")[0] == 452
    assert presented_certificate(port) == renewed
    assert server.process is not None and server.process.poll() is None
    assert (server.data_dir / "run" / "listeners.json").exists()


def test_malformed_configuration_keeps_the_running_one(
    make_server: Callable[..., TodokuServer],
) -> None:
    server = make_server("[limits]\nmax_recipients = 1", services=("smtp", "submission"))
    port = server.ports["smtp"]
    before = server.log()
    server.config_path.write_text(server.config_path.read_text() + "\n[limits\nbroken = \n")
    hangup(server)
    log = wait_for(server.log, "keeping the running configuration")
    new_lines = log[len(before) :].strip().splitlines()
    assert len(new_lines) == 1, new_lines
    assert "reload:" in new_lines[0] and "not valid TOML" in new_lines[0]
    assert server.process is not None and server.process.poll() is None
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:  # the old limit still holds
        client.ehlo("client.example")
        assert client.mail("a@remote.example")[0] == 250
        assert client.rcpt("postmaster@example.test")[0] == 250
        assert client.rcpt("postmaster@example.test")[0] == 452


def test_listener_added_and_removed(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(services=("smtp", "pop3"))
    pop3_port = server.ports["pop3"]
    write_config(server.root, services=("smtp", "submission"))
    hangup(server)
    log = wait_for(server.log, "reloaded ")
    assert "listening for submission on 127.0.0.1:0" in log
    assert "stopped listening for pop3" in log
    bound = json.loads((server.data_dir / "run" / "listeners.json").read_text())
    assert set(bound) == {"smtp", "submission", "pid"}
    with smtplib.SMTP("127.0.0.1", bound["submission"][1], timeout=15) as client:
        assert client.ehlo("client.example")[0] == 250
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", pop3_port, timeout=5)


def test_restart_keys_are_kept(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(services=("smtp",))
    write_config(server.root, services=("smtp",), hostname="other.example.test")
    hangup(server)
    log = wait_for(server.log, "reloaded ")
    assert "reload: hostname: changed to other.example.test, needs a restart;" in log
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert b"mx.example.test" in client.ehlo("client.example")[1]


def test_log_rotation_by_rename(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server('[log]\nfile = "todoku.log"', services=("smtp",))
    current, rotated = server.root / "todoku.log", server.root / "todoku.log.1"
    wait_for(reader(current), "listening for smtp")
    current.rename(rotated)
    hangup(server)
    wait_for(reader(current), "reloaded ")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.example")
        client.mail("a@remote.example")
        assert client.rcpt("nosuch@example.test")[0] == 550
    wait_for(reader(current), "to=<nosuch@example.test>")
    assert "listening for smtp" in rotated.read_text()
    assert "reloaded " not in rotated.read_text()
    assert "nosuch@example.test" not in rotated.read_text()
    assert server.log() == ""  # nothing on standard error


def test_json_log_lines(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server('[log]\nfile = "todoku.log"\nformat = "json"', services=("smtp",))
    path = server.root / "todoku.log"
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.example")
        client.mail("a@remote.example")
        assert client.rcpt("nosuch@example.test")[0] == 550
    wait_for(reader(path), "nosuch@example.test")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines
    for line in lines:
        assert set(line) == {"time", "logger", "message"}
        assert line["time"].endswith("Z") and line["logger"].startswith("todoku")
    reject = [line["message"] for line in lines if "nosuch@example.test" in line["message"]]
    assert reject[0].startswith("smtp[") and "NOQUEUE: reject: RCPT" in reject[0]


def https_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    with context.wrap_socket(raw, server_hostname="mx.example.test") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_reload_renews_the_https_certificate(make_server: Callable[..., TodokuServer]) -> None:
    """The web listener presents a renewed certificate after SIGHUP, like the mail listeners."""
    services = ("smtp", "https")
    server = make_server(start=False, services=services)
    first = new_certificate(server.root, "mx.example.test")
    write_config(server.root, tls_extra(server.root), services=services)
    server.start()
    port = bound_ports(server)["https"]
    assert https_certificate(port) == first
    renewed = new_certificate(server.root, "mx.example.test")
    hangup(server)
    wait_for(server.log, "reloaded ")
    assert https_certificate(port) == renewed
