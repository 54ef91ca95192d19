"""A loopback HTTPS server for MTA-STS tests: the standard library's HTTP server behind TLS with
a certificate from the test CA, answering every GET with what the test set.

    with policy_server(ca.server_context("mta-sts.remote.test")) as web:
        web.body = b"version: STSv1\\r\\nmode: enforce\\r\\n..."
        web.status = 200          # or 301 with web.headers["Location"], 404, 500
        web.requests              # the paths and Host headers asked for
        web.posts                 # POSTed bodies (TLS-RPT reports), answered web.post_status

It runs on its own thread at 127.0.0.1 and a port chosen by the kernel (``web.port``).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class PolicyServer:
    context: ssl.SSLContext
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    # POSTs (TLS-RPT https rua): (path, Content-Type, body); answered with ``post_status``.
    posts: list[tuple[str, str, bytes]] = field(default_factory=list)
    post_status: int = 200
    port: int = 0


def _handler(server: PolicyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            server.requests.append((self.path, self.headers.get("Host", "")))
            self.send_response(server.status)
            for name, value in server.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(server.body)))
            self.end_headers()
            self.wfile.write(server.body)

        def do_POST(self) -> None:  # the name http.server calls
            length = min(int(self.headers.get("Content-Length", "0")), 1024 * 1024)
            body = self.rfile.read(length)
            server.posts.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(server.post_status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def policy_server(context: ssl.SSLContext) -> Iterator[PolicyServer]:
    state = PolicyServer(context)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
