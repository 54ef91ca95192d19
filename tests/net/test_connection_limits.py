"""Connection limits (issue 12, finding 3): a client address may hold only so many connections, the
server only so many in all, and the open-file limit is raised and respected. The real server, with
raw sockets as clients; the once-a-minute logging with an injected clock."""

from __future__ import annotations

import json
import logging
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO

import pytest

from tests.conftest import TodokuServer, client_tls_context

REFUSED_SMTP = b"421 4.7.0 Error: too many connections from [127.0.0.1]\r\n"
REFUSED_POP3 = b"-ERR [SYS/TEMP] too many connections from [127.0.0.1]; try again later\r\n"


@contextmanager
def connection(port: int, source: str = "127.0.0.1") -> Iterator[tuple[socket.socket, BinaryIO]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
    with sock, sock.makefile("rb") as replies:
        yield sock, replies


def hold(stack: ExitStack, port: int, source: str = "127.0.0.1") -> tuple[socket.socket, BinaryIO]:
    """An open connection that got its greeting."""
    sock, replies = stack.enter_context(connection(port, source))
    greeting = replies.readline()
    assert greeting.startswith((b"220 ", b"+OK ")), greeting
    return sock, replies


def refused(port: int, source: str = "127.0.0.1") -> bytes:
    """The one line a refused connection gets before the server closes it."""
    with connection(port, source) as (_, replies):
        line = replies.readline()
        assert replies.read() == b"", "the server must close a refused connection"
        return line


def quit_smtp(sock: socket.socket, replies: BinaryIO) -> None:
    sock.sendall(b"QUIT\r\n")
    assert replies.readline().startswith(b"221 ")
    assert replies.read() == b""  # closed on the server's side: its place is given back


def refusal_lines(server: TodokuServer, ip: str) -> list[str]:
    return [
        line for line in server.log().splitlines() if f"refused a connection from [{ip}]" in line
    ]


def test_per_address_limit_on_every_listener(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(extra="[limits]\nmax_connections_per_ip = 3\n")
    smtp, pop3 = server.ports["smtp"], server.ports["pop3"]
    with ExitStack() as stack:
        first = hold(stack, smtp)
        hold(stack, server.ports["submission"])
        hold(stack, pop3)
        # The fourth connection from the address, whichever listener: refused, then closed.
        assert refused(smtp) == REFUSED_SMTP
        assert refused(server.ports["submission"]) == REFUSED_SMTP
        assert refused(pop3) == REFUSED_POP3
        # Implicit TLS: counted before the handshake, refused without one (closed at once).
        with (
            connection(server.ports["pop3s"]) as (sock, _),
            pytest.raises((ssl.SSLError, ConnectionError)),
        ):
            client_tls_context().wrap_socket(sock)
        # Another address is not affected.
        hold(stack, smtp, source="127.0.0.2")
        # Closing one frees its place.
        quit_smtp(*first)
        hold(stack, pop3)
        assert refused(smtp) == REFUSED_SMTP
    # Six refusals in a few seconds: one log line for the address, not one per connection.
    [line] = refusal_lines(server, "127.0.0.1")
    assert "3 open from that address (limits.max_connections_per_ip = 3)" in line
    assert not refusal_lines(server, "127.0.0.2")


def test_total_limit_across_addresses(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(extra="[limits]\nmax_connections = 2\nmax_connections_per_ip = 0\n")
    with ExitStack() as stack:
        hold(stack, server.ports["smtp"], source="127.0.0.1")
        second = hold(stack, server.ports["smtp"], source="127.0.0.2")
        assert refused(server.ports["smtp"], source="127.0.0.3") == (
            b"421 4.3.2 Error: too many connections; try again later\r\n"
        )
        assert refused(server.ports["pop3"], source="127.0.0.4") == (
            b"-ERR [SYS/TEMP] too many connections; try again later\r\n"
        )
        quit_smtp(*second)
        hold(stack, server.ports["pop3"], source="127.0.0.3")
    [line] = refusal_lines(server, "127.0.0.3")
    assert "2 open in all (limits.max_connections = 2)" in line


def start_with_file_limit(server: TodokuServer, soft: int, hard: int) -> None:
    """``server.start()``, with the open-file limits of the server process set to soft/hard."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    listeners = server.data_dir / "run" / "listeners.json"
    server.log_path = server.root / "server.log"
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "todoku", "serve", "--config", str(server.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,  # noqa: PLW1509 - only setrlimit, in a single-threaded parent
        )
    deadline = time.monotonic() + 20
    while not listeners.exists():
        assert server.process.poll() is None, server.log()
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    server.ports = {k: v[1] for k, v in json.loads(listeners.read_text()).items() if k != "pid"}


def test_open_file_limit_is_raised_and_caps_the_connections(
    make_server: Callable[..., TodokuServer],
) -> None:
    # 600 open files: (600 - 64 kept - 400 for the outbound queue) / 2 per connection = 68.
    server = make_server(
        start=False, extra="[limits]\nmax_connections = 1000\nmax_connections_per_ip = 0\n"
    )
    start_with_file_limit(server, soft=512, hard=600)
    log = server.log()
    assert "open files: soft limit raised from 512 to the hard limit 600" in log
    assert "limits.max_connections = 1000 needs more open files than the limit of 600" in log
    assert "connections: at most 68 in all (open-file limit 600)" in log
    with ExitStack() as stack:
        for _ in range(68):
            hold(stack, server.ports["smtp"])
        assert refused(server.ports["smtp"]).startswith(b"421 4.3.2 ")


def test_default_total_comes_from_the_open_file_limit(
    make_server: Callable[..., TodokuServer],
) -> None:
    server = make_server(start=False)
    start_with_file_limit(server, soft=700, hard=700)
    log = server.log()
    assert "soft limit raised" not in log
    assert "connections: at most 118 in all (open-file limit 700), 50 per client address" in log


# ----------------------------------------------------------------- the counting itself


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ipv6_clients_are_counted_per_64_and_released() -> None:
    from todoku.net.link import ConnectionLimits

    limits = ConnectionLimits(max_connections=100, max_per_client=2)
    assert limits.admit("2001:db8:1:2::1") is None
    assert limits.admit("2001:db8:1:2:aaaa::9") is None
    refusal = limits.admit("2001:db8:1:2:ffff::1")
    assert refusal is not None and not refusal.in_all and refusal.client == "2001:db8:1:2:ffff::1"
    assert limits.admit("2001:db8:1:3::1") is None  # the next /64
    limits.release("2001:db8:1:2::1")
    assert limits.held("2001:db8:1:2::5") == 1 and limits.open == 2
    assert limits.admit("2001:db8:1:2::7") is None


def test_refusals_are_logged_once_a_minute_per_address(caplog: pytest.LogCaptureFixture) -> None:
    from todoku.net.link import LOG_EVERY, ConnectionLimits

    clock = Clock()
    limits = ConnectionLimits(max_connections=3, max_per_client=1, clock=clock)
    caplog.set_level(logging.INFO, logger="todoku.net")
    assert limits.admit("192.0.2.1") is None
    for _ in range(50):
        assert limits.admit("192.0.2.1") is not None
        clock.now += 1.0  # 50 refusals over 50 seconds
    assert limits.admit("192.0.2.2") is None
    assert limits.admit("192.0.2.2") is not None  # another address: a line of its own
    clock.now += LOG_EVERY  # a minute after the first line
    assert limits.admit("192.0.2.1") is not None
    lines = [r.getMessage() for r in caplog.records]
    about_1 = [line for line in lines if "[192.0.2.1]" in line]
    assert len(about_1) == 2 and len([line for line in lines if "[192.0.2.2]" in line]) == 1
    assert "49 more refused since the last line about it" in about_1[1]
    # The total: once a minute too, whichever addresses are refused.
    assert limits.admit("192.0.2.3") is None
    for host in range(10, 20):
        assert limits.admit(f"192.0.2.{host}") is not None
    assert len([line for line in caplog.records if "open in all" in line.getMessage()]) == 1
