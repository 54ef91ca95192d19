"""A real DNS server on loopback for tests: UDP and TCP on 127.0.0.1, port chosen by the kernel.

Zones are plain tables set by the test::

    with DnsServer() as dns_server:
        dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
        dns_server.add("mx1.remote.test", "A", "127.0.0.2")
        dns_server.servfail("broken.test"); dns_server.timeout("slow.test")
        dns_server.add("_25._tcp.mx1.remote.test", "TLSA", "3 1 1 <sha-256 hex>")
        dns_server.authenticate("remote.test")   # answers for it carry the AD bit (DNSSEC)
        config: nameservers = [dns_server.address]   # "127.0.0.1:PORT"

A name that is not in the table gets NXDOMAIN; a name that is, but without the asked type, gets
an empty NOERROR answer (NODATA). Answers for names marked with ``authenticate`` (records or
NODATA, never errors) carry the AD bit, as a validating resolver's would; no other answer does.
Both threads stop when the context exits.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import defaultdict

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._records: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._servfail: set[str] = set()
        self._timeout: set[str] = set()
        self._authenticated: set[str] = set()
        self._lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        self._udp, self._tcp = self._bind_pair(host)
        self.port = self._udp.getsockname()[1]
        self._tcp.listen(16)
        self._udp.settimeout(0.2)
        self._tcp.settimeout(0.2)
        self.address = f"{host}:{self.port}"
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]

    @staticmethod
    def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on the same free port. The kernel picks the UDP port; that
        port may already be taken for TCP by another test's connection, so try again."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((host, 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            return udp, tcp
        raise OSError("no port free for both UDP and TCP")

    # ------------------------------------------------------------------ zone data

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().rstrip(".")

    def add(self, name: str, rdtype: str, text: str) -> None:
        with self._lock:
            self._records[self._key(name)][rdtype.upper()].append(text)

    def exists(self, name: str) -> None:
        """Make the name exist without any record (every query → NODATA)."""
        with self._lock:
            self._records[self._key(name)]

    def servfail(self, name: str) -> None:
        with self._lock:
            self._servfail.add(self._key(name))

    def timeout(self, name: str) -> None:
        with self._lock:
            self._timeout.add(self._key(name))

    def authenticate(self, *names: str) -> None:
        """Answers for ``names`` say they are DNSSEC-validated (AD bit, RFC 4035 §3.2.3)."""
        with self._lock:
            self._authenticated.update(self._key(n) for n in names)

    def clear(self, name: str) -> None:
        with self._lock:
            key = self._key(name)
            self._records.pop(key, None)
            self._servfail.discard(key)
            self._timeout.discard(key)
            self._authenticated.discard(key)

    # ------------------------------------------------------------------ serving

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - a test server ignores garbage
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = self._key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if name in self._timeout:
                return None
            if name in self._servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            if name not in self._records:
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response.to_wire()
            texts = list(self._records[name].get(rdtype, []))
            if name in self._authenticated:
                response.flags |= dns.flags.AD
        if texts:
            rrset = dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rdtype, texts)
            response.answer.append(rrset)
        return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            reply = self.answer(wire)
            if reply is not None:
                self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    size = struct.unpack("!H", conn.recv(2))[0]
                    wire = b""
                    while len(wire) < size:
                        chunk = conn.recv(size - len(wire))
                        if not chunk:
                            break
                        wire += chunk
                    reply = self.answer(wire)
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, struct.error):
                    continue

    def start(self) -> DnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._udp.close()
        self._tcp.close()

    def __enter__(self) -> DnsServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
