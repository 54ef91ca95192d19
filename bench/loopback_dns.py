"""A DNS server on loopback for bench/run.py: tests/dnsserver.py with the zone given as arguments.

    loopback_dns.py NAME TYPE VALUE [NAME TYPE VALUE ...]

Prints "127.0.0.1:PORT" once it answers, then serves until its standard input closes (the
benchmark holds the pipe; when the benchmark ends, so does this server).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.dnsserver import DnsServer


def main(argv: list[str]) -> int:
    if len(argv) % 3:
        sys.exit("usage: loopback_dns.py NAME TYPE VALUE [...]")
    with DnsServer() as server:
        for index in range(0, len(argv), 3):
            server.add(argv[index], argv[index + 1], argv[index + 2])
        print(server.address, flush=True)
        sys.stdin.read()  # until the parent closes the pipe
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
