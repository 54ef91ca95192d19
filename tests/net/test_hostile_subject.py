"""The hostile Subject of issue 12 (finding 1), end to end: the real ``todoku serve`` process,
a real SMTP client, a fake next hop without DSN.

An unauthenticated client sends 600 KB of ``=?utf-8?b?5a6b?=`` as a Subject to a local alias
that forwards to another domain, with ``NOTIFY=SUCCESS``: after the next hop takes the message
we owe the sender a "relayed" report (RFC 3461 §5.2.2.3). Writing it parsed the Subject with the
standard library's header parser on the event loop: the server grew by gigabytes, froze every
other session for seconds and, on MemoryError, retried the entry forever. Now: the server's peak
RSS stays within RSS_BOUND of what it was before, another session's NOOP is answered within a
second throughout, the report reaches the sender and the entry is retired.

The server's address space is capped a little above what it needs (prlimit), so that the code
before the fix fails here with MemoryError instead of taking the test machine's memory.
"""

from __future__ import annotations

import resource
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.net.test_outbound_e2e import delivery_config, queue_json, wait_until
from tests.queue.fakemx import FakeMx, fake_mxes
from tests.queue.reports import parse_report

WORD = b"=?utf-8?b?5a6b?="  # "宛"
SUBJECT_SIZE = 600 * 1024
RSS_BOUND = 300 * 1024 * 1024  # over the RSS after a first, ordinary report
ADDRESS_SPACE_HEADROOM = 1536 * 1024 * 1024  # over the VmSize after that report
NOOP_BOUND = 1.0  # seconds
SENDER = "someone@remote.test"
ALIAS = "fwd@example.test"
NEXT_HOP = "bob@remote.test"
NO_DSN = ("PIPELINING", "SIZE 30000000", "8BITMIME", "SMTPUTF8")


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("remote.test", "MX", "10 mx1.remote.test.")
        server.add("mx1.remote.test", "A", "127.0.0.2")
        yield server


@pytest.fixture
def next_hop() -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2", extensions=NO_DSN) as (fake,):
        yield fake


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def hostile_message() -> bytes:
    # Folded into lines of 40 words (640 octets), as a mailer would: every hop takes it, and
    # the unfolded Subject is the same 600 KB of encoded words.
    line = WORD * 40
    lines = [line] * (SUBJECT_SIZE // len(line))
    return (
        b"From: "
        + SENDER.encode()
        + b"\r\nTo: "
        + ALIAS.encode()
        + b"\r\nSubject: "
        + b"\r\n ".join(lines)
        + b"\r\n\r\nhello\r\n"
    )


def send(server: TodokuServer, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=60) as client:
        client.ehlo("client.remote.test")
        assert client.has_extn("dsn")
        refused = client.sendmail(SENDER, [ALIAS], message, rcpt_options=["NOTIFY=SUCCESS"])
        assert refused == {}


def reports_to_sender(next_hop: FakeMx) -> list[bytes]:
    return [m.data for m in next_hop.messages if m.sender == "" and m.recipients == [SENDER]]


def test_hostile_subject_keeps_memory_flat_and_other_sessions_answered(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, next_hop: FakeMx
) -> None:
    server = make_server(extra=delivery_config(dns_server, next_hop.port), start=False)
    server.cli("alias", "add", ALIAS, NEXT_HOP)
    server.start()
    assert server.process is not None
    pid = server.process.pid

    # An ordinary message first, so that what a report needs (the bounce analyzer, the worker
    # threads) is loaded before the baseline is taken.
    send(server, b"From: someone@remote.test\r\nSubject: warm-up\r\n\r\nhi\r\n")
    wait_until(lambda: len(reports_to_sender(next_hop)) == 1, what="the first report")
    wait_until(lambda: not queue_json(server), what="an empty queue")
    baseline = status_kib(pid, "VmRSS") * 1024
    cap = status_kib(pid, "VmSize") * 1024 + ADDRESS_SPACE_HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))

    send(server, hostile_message())

    # While the message is forwarded and the report written, another session is served.
    latencies: list[float] = []
    deadline = time.monotonic() + 90
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as other:
        other.ehlo("other.remote.test")
        while time.monotonic() < deadline and len(reports_to_sender(next_hop)) < 2:
            started = time.monotonic()
            assert other.noop()[0] == 250
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        started = time.monotonic()
        assert other.noop()[0] == 250
        latencies.append(time.monotonic() - started)

    peak = status_kib(pid, "VmHWM") * 1024
    assert peak - baseline < RSS_BOUND, (
        f"peak RSS {peak >> 20} MiB, {(peak - baseline) >> 20} MiB over the baseline"
    )
    assert max(latencies) < NOOP_BOUND, f"a NOOP waited {max(latencies):.2f}s"

    reports = reports_to_sender(next_hop)
    assert len(reports) == 2, f"no report for the hostile message; log:\n{server.log()[-3000:]}"
    wait_until(lambda: not queue_json(server), what="the entry to be retired")
    assert "failed unexpectedly" not in server.log()
    forwarded = [m for m in next_hop.messages if m.recipients == [NEXT_HOP]]
    assert len(forwarded) == 2 and forwarded[1].data.endswith(b"\r\n\r\nhello\r\n")

    parsed = parse_report(reports[1])
    [recipient] = parsed.recipients
    assert recipient["Action"] == "relayed"
    assert recipient["Final-Recipient"] == f"rfc822; {NEXT_HOP}"
    quoted = parsed.human.partition('"')[2].partition('"')[0]
    assert quoted and set(quoted) == {"宛"} and len(quoted) <= 200
    assert parsed.returned.get_content_type() == "text/rfc822-headers"
