"""Run Debian's ``opendkim-testmsg`` against keys served by our test DNS server.

libopendkim asks the resolver named in /etc/resolv.conf, on port 53, with no way to choose
another. So this script runs inside ``unshare --mount --net``: a private network namespace
(its own loopback, nobody else's port 53) and a private mount namespace where a temporary
resolv.conf is bind-mounted over /etc/resolv.conf. Nothing outside the namespaces changes.

    unshare -mn python -m tests.mailauth.opendkim_ns ZONE.json MESSAGE  → exit status of opendkim-testmsg
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.dnsserver import DnsServer


def main() -> int:
    zone_path, message_path = sys.argv[1], sys.argv[2]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as resolv:
        resolv.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", resolv.name, "/etc/resolv.conf"], check=True)
    server = DnsServer()
    for name, rdtype, text in json.loads(Path(zone_path).read_text()):
        server.add(name, rdtype, text)
    port53 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port53.bind(("127.0.0.1", 53))  # inside the private namespace only
    port53.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = port53.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            reply = server.answer(wire)
            if reply is not None:
                port53.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with open(message_path, "rb") as message:
            result = subprocess.run(
                ["opendkim-testmsg"], stdin=message, capture_output=True, timeout=30, check=False
            )
    finally:
        stop.set()
        thread.join(2)
        port53.close()
    sys.stderr.write(
        result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
