"""A message with 8-bit content bounces like any other (the queue, the loopback DNS server and a
fake MX that refuses the recipient): the report comes back with the original unchanged."""

from __future__ import annotations

import time
from pathlib import Path

from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes
from tests.queue.harness import running_queue
from tests.queue.reports import parse_report
from todoku.queue.schedule import FakeClock

ALICE = "alice@example.test"
UTF8_MESSAGE = (
    "From: Jürgen <alice@example.test>\r\nSubject: Grüße aus Köln\r\n\r\nBis bald — J.\r\n".encode()
)


async def test_message_with_utf8_headers_bounces_as_a_global_report(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2") as (mx,):
        dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
        dns_server.add("mx1.remote.test", "A", "127.0.0.2")
        clock = FakeClock(time.time())  # no retry or expiry can happen while it runs
        async with running_queue(tmp_path / "data", dns_server.address, mx.port, clock=clock) as q:
            await q.submit(["unknown.user@remote.test"], body=UTF8_MESSAGE, received_at=clock.now())
            await q.quiet(clock.now())
            assert not q.store.list_queue()
            [bounce] = q.mailbox(ALICE)
    report = parse_report(bounce)
    assert report.message.get_param("report-type") == "global-delivery-status"
    assert report.recipients[0]["Status"] == "5.1.1"
    assert report.returned.get_content_type() == "message/global"
    assert UTF8_MESSAGE in bounce
    assert "Grüße aus Köln" in report.human  # the subject, quoted in the explanation
