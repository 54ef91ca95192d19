"""A real peer sending to us: Debian's Postfix (started by ../shared/peers/setup-peers.sh) relays
mail for a todoku domain to todoku's MX, and todoku stores it.

The test points Postfix's transport map for ``todoku.test`` at our MX for its duration and puts
the original map back afterwards. It skips when Postfix is not installed or not listening.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TodokuServer
from tests.net.test_smtp_e2e import mailbox_contents

PF_PORT = int(os.environ.get("PF_PORT", "2525"))


def _postfix_listening() -> bool:
    if shutil.which("postconf") is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", PF_PORT), timeout=2) as sock:
            return sock.recv(100).startswith(b"220")
    except OSError:
        return False


def _postconf(*args: str) -> str:
    return subprocess.run(
        ["postconf", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


@pytest.fixture
def postfix_route() -> Iterator[Callable[[str, int], None]]:
    if not _postfix_listening():
        pytest.skip(
            f"Postfix is not listening on 127.0.0.1:{PF_PORT} (run ../shared/peers/setup-peers.sh all)"
        )
    original = _postconf("-h", "transport_maps").strip()

    def route(domain: str, port: int) -> None:
        entry = f"{domain}=smtp:[127.0.0.1]:{port}"
        if original.startswith("inline:{") and original.endswith("}"):
            maps = original[:-1].rstrip() + f", {entry} }}"
        else:
            maps = f"inline:{{ {entry} }}" + (f", {original}" if original else "")
        _postconf("-e", f"transport_maps = {maps}")
        subprocess.run(["postfix", "reload"], capture_output=True, check=True, timeout=30)

    yield route
    _postconf("-e", f"transport_maps = {original}")
    subprocess.run(["postfix", "reload"], capture_output=True, check=False, timeout=30)


def test_postfix_relays_to_todoku(
    make_server: Callable[..., TodokuServer], postfix_route: Callable[[str, int], None]
) -> None:
    server = make_server(start=False, domains=["todoku.test"], hostname="mx.todoku.test")
    server.add_user("bob@todoku.test")
    server.start()
    postfix_route("todoku.test", server.ports["smtp"])
    token = uuid.uuid4().hex
    body = (
        f"Subject: from postfix {token}\r\n\r\nrelayed by a real Postfix\r\n.dot line\r\n".encode()
    )
    with smtplib.SMTP("127.0.0.1", PF_PORT, timeout=30) as client:
        client.sendmail("someone@example.test", ["bob@todoku.test"], body)
    deadline = time.monotonic() + 60
    stored: list[bytes] = []
    while time.monotonic() < deadline:
        stored = mailbox_contents(server, "bob@todoku.test")
        if stored:
            break
        time.sleep(0.5)
    assert len(stored) == 1, (
        f"Postfix did not deliver to todoku within 60 s; server log:\n{server.log()}"
    )
    message = stored[0]
    assert message.endswith(b"relayed by a real Postfix\r\n.dot line\r\n")
    assert token.encode() in message
    # Our Received header names Postfix (its EHLO name) as the client.
    first_received = message.split(b"\r\n\tby mx.todoku.test", 1)[0]
    helo = _postconf("-h", "myhostname").strip().encode()
    assert first_received == b"Received: from " + helo + b" ([127.0.0.1])"
