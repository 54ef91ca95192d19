"""Web connections count in the same limits as mail connections (issue 12, finding 3; found by
the second attack pass: the https listener held every connection, and a client that never
started its TLS handshake held a descriptor the mail listeners needed)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.conftest import TodokuServer
from tests.web.test_web_e2e import bound_ports, start_server, trust


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TodokuServer]:
    server = start_server(
        tmp_path_factory.mktemp("weblimits") / "server",
        "[limits]\nmax_connections_per_ip = 3\n",
    )
    yield server
    server.stop()


def closed_without_answer(port: int) -> bool:
    """True when the server closes a new connection from 127.0.0.1 at once, without a byte (a
    connection it admitted waits for the client: up to the 10 s handshake time on https)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(3)
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def smtp_greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return sock.makefile("rb").readline()


def get_404(port: int, context: ssl.SSLContext) -> bool:
    """One https request for an unknown path; True when it is answered 404."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="mx.example.test") as tls:
        tls.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return tls.recv(64).startswith(b"HTTP/1.1 404")


def test_silent_https_connections_hold_slots_shared_with_mail(limited: TodokuServer) -> None:
    ports = bound_ports(limited)
    with ExitStack() as stack:
        for _ in range(3):  # never a handshake: each still counts from accept
            stack.enter_context(socket.create_connection(("127.0.0.1", ports["https"]), timeout=10))
        assert closed_without_answer(ports["https"])
        assert smtp_greeting(ports["smtp"]).startswith(b"421 4.7.0 ")
    # Closed: the slots are free again, for mail and for the web.
    deadline = time.monotonic() + 10
    while smtp_greeting(ports["smtp"]).startswith(b"421") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert smtp_greeting(ports["smtp"]).startswith(b"220 ")
    context = trust(limited)
    assert get_404(ports["https"], context)


def test_plain_http_connections_count_too(limited: TodokuServer) -> None:
    ports = bound_ports(limited)
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(socket.create_connection(("127.0.0.1", ports["http"]), timeout=10))
        assert closed_without_answer(ports["http"])


def test_tls_still_works_through_the_counted_accept(limited: TodokuServer) -> None:
    ports = bound_ports(limited)
    context = trust(limited)
    for _ in range(5):  # more than the per-address limit, one after another: each releases
        assert get_404(ports["https"], context)
