"""SMTP send time-out (issue 16): a client that sends commands but never reads the replies is
dropped after ``[limits] send_timeout``, and its place in the connection limits is free again.

The real server and a raw socket with a small receive buffer: the client pipelines EHLO (a short
command with a long reply) without reading, so the server's replies back up until its transport
stops accepting them; the connection must then be gone within the (1 s) time-out.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tests.conftest import TodokuServer

EXTRA = """
[limits]
send_timeout = "1s"
max_connections_per_ip = 1
"""


def flood_without_reading(port: int, limit: float) -> float:
    """Send EHLOs, never reading, until the server drops us; how long that took, in seconds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.2)
    chunk = b"EHLO client.example\r\n" * 2000
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit:
            try:
                sock.send(chunk)
            except TimeoutError:
                continue  # the server has stopped reading too: it waits for us to read
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    finally:
        sock.close()
    raise AssertionError(f"the server still held a client that read nothing after {limit}s")


def test_client_that_never_reads_is_dropped(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(EXTRA, services=("smtp",))
    port = server.ports["smtp"]
    took = flood_without_reading(port, limit=20.0)
    assert took < 15.0
    deadline = time.monotonic() + 10
    while "limits.send_timeout" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    dropped = [line for line in server.log().splitlines() if "limits.send_timeout" in line]
    assert len(dropped) == 1, server.log()
    assert "dropped [127.0.0.1]: nothing read for 1s" in dropped[0]
    # Its place (max_connections_per_ip = 1) is given back: the next connection is greeted.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert sock.makefile("rb").readline().startswith(b"220 ")
