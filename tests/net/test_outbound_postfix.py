"""A real peer: todoku delivers to Debian's Postfix on loopback (started by
/work/shared/peers/setup-peers.sh; the test skips when it is not listening)."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.dnsserver import DnsServer

PF_PORT = int(os.environ.get("PF_PORT", "2525"))
VMAIL = Path(os.environ.get("VMAIL_BASE", "/var/spool/bench-vmail")) / "example.test" / "b"


def postfix_listening() -> bool:
    if shutil.which("postfix") is None and not Path("/usr/sbin/postfix").exists():
        return False
    try:
        with socket.create_connection(("127.0.0.1", PF_PORT), timeout=2) as sock:
            return sock.recv(100).startswith(b"220")
    except OSError:
        return False


def test_todoku_delivers_to_postfix(make_server: Callable[..., TodokuServer]) -> None:
    if not postfix_listening():
        pytest.skip(
            f"Postfix is not listening on 127.0.0.1:{PF_PORT} (run /work/shared/peers/setup-peers.sh all)"
        )
    import smtplib

    token = uuid.uuid4().hex
    with DnsServer() as dns:
        dns.add("example.test", "MX", "10 mx.peer.test.")
        dns.add("mx.peer.test", "A", "127.0.0.1")
        extra = (
            f'[dns]\nnameservers = ["{dns.address}"]\n\n'
            f'[delivery]\nport = {PF_PORT}\nretry = ["1s"]\n'
        )
        server = make_server(
            extra=extra, start=False, domains=["todoku.test"], hostname="mx.todoku.test"
        )
        server.add_user("alice@todoku.test")
        server.start()
        with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as client:
            client.starttls(context=client_tls_context())
            client.login("alice@todoku.test", PASSWORD)
            client.sendmail(
                "alice@todoku.test",
                [f"peer-{token[:8]}@example.test"],
                f"Subject: to postfix {token}\r\n\r\nhello postfix\r\n".encode(),
            )
        deadline = time.monotonic() + 60
        found: bytes | None = None
        while time.monotonic() < deadline and found is None:
            for path in sorted(
                (VMAIL / "new").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True
            )[:200]:
                data = path.read_bytes()
                if token.encode() in data:
                    found = data
                    break
            time.sleep(0.5)
        queue = server.cli("queue", "list").stdout
    assert found is not None, (
        f"Postfix never stored the message; todoku queue: {queue}\n{server.log()[-2000:]}"
    )
    assert b"hello postfix" in found
    assert b"by mx.todoku.test (todoku)" in found  # our Received: header made it through
    assert "to=<peer-" in server.log() and "=> delivered" in server.log()
