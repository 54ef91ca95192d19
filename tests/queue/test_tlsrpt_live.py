"""TLS reporting (RFC 8460) end to end with real sockets: the queue delivers through the real
SMTP transport to a fake MX whose certificate is for another name, so an MTA-STS enforce domain
and a DANE domain (TLSA records that match nothing) fail and a domain without a policy
succeeds; the loopback DNS server publishes ``_smtp._tls`` for the failing domains. A virtual
clock then moves to the next day, the daily run sends each report through todoku's own queue
(DKIM-signed) and by HTTPS POST, and the reports the fake MX and the web server received are
parsed back and checked field by field against RFC 8460 §4.4 and §5.
"""

from __future__ import annotations

import calendar
import email
import gzip
import json
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.queue.fakerelay import RelayCa, fake_relay, make_ca
from tests.queue.harness import HOSTNAME, Queue, running_queue
from tests.queue.policyserver import policy_server
from tests.queue.test_tlsrpt import check_schema
from todoku.dns.dnspython import DnspythonResolver
from todoku.mailauth.dkim import KeyStore, Signer
from todoku.net.smtp_client import verified_tls_context
from todoku.queue import tlsrpt
from todoku.queue.mtasts import HttpsPolicyFetcher, MtaSts, PolicyCache, cache_directory
from todoku.queue.schedule import FakeClock
from todoku.queue.setup import report_enqueuer
from todoku.queue.tlsrpt_send import HttpsReportPoster, ReporterSettings, TlsReporter

DAY = "2026-12-01"
NOON = calendar.timegm((2026, 12, 1, 12, 0, 0))
MX = "mx1.remote.test"
SUBMITTER = tlsrpt.Submitter("Example Org", "postmaster@example.test", "example.test")
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.remote.test\r\nmax_age: 86400\r\n"


@pytest.fixture
def ca(tmp_path: Path) -> RelayCa:
    return make_ca(str(tmp_path))


def zone(dns: DnsServer, web_port: int) -> None:
    dns.add("remote.test", "MX", f"10 {MX}.")
    dns.add(MX, "A", "127.0.0.1")
    dns.add("_mta-sts.remote.test", "TXT", '"v=STSv1; id=1"')
    dns.add("mta-sts.remote.test", "A", "127.0.0.1")
    # The second address is at the failing domain itself: RFC 8460 §5.3 wants the report
    # delivered there despite its broken MTA-STS (todoku marks it "TLS-Required: No").
    rua = (
        f"mailto:tls@reports.test,mailto:tlsrpt@remote.test,https://reports.test:{web_port}/tlsrpt"
    )
    dns.add("_smtp._tls.remote.test", "TXT", f'"v=TLSRPTv1; rua={rua}"')
    dns.add("dane.test", "MX", "10 mx.dane.test.")
    dns.add("mx.dane.test", "A", "127.0.0.1")
    dns.add("_25._tcp.mx.dane.test", "TLSA", "3 1 1 " + "00" * 32)
    dns.authenticate("dane.test", "mx.dane.test", "_25._tcp.mx.dane.test")
    dns.add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:tls@reports.test"')
    dns.add("ok.test", "MX", "10 mx.ok.test.")
    dns.add("mx.ok.test", "A", "127.0.0.1")
    dns.add("reports.test", "MX", "10 mx.reports.test.")
    dns.add("mx.reports.test", "A", "127.0.0.1")
    dns.add("reports.test", "A", "127.0.0.1")


def parse(data: bytes) -> tuple[EmailMessage, dict[str, object], str]:
    message = email.message_from_bytes(data, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    _, attachment = message.iter_parts()
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    report = json.loads(gzip.decompress(attachment.get_content()))
    return message, report, str(attachment.get_filename())


async def test_a_day_of_sessions_is_reported_by_mail_and_https(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    data = tmp_path / "data"
    clock = FakeClock(NOON)
    signer = Signer(KeyStore(data), ("example.test",))
    signer.ensure_all()
    with policy_server(ca.server_context("mta-sts.remote.test", "reports.test")) as web:
        web.body = POLICY
        zone(dns_server, web.port)
        async with fake_relay(ca.server_context("imposter.test")) as mx:
            resolver = DnspythonResolver((dns_server.address,), lifetime=2.0, dnssec=True)
            fetcher = HttpsPolicyFetcher(resolver, ca_file=ca.ca_file, port=web.port, timeout=5)
            mta_sts = MtaSts(resolver, fetcher, PolicyCache(cache_directory(data)))
            queues: list[Queue] = []

            async def enqueue(sender: str, to: tuple[str, ...], message: bytes) -> None:
                await report_enqueuer(queues[0].backend)(sender, to, message)

            reporter = TlsReporter(
                data / "tlsrpt",
                ReporterSettings(SUBMITTER, "postmaster@example.test", HOSTNAME),
                resolver,
                enqueue,
                HttpsReportPoster(resolver, ca_file=ca.ca_file, timeout=5),
                signer=signer.outbound_prefix,
                clock=clock,
            )
            mta_sts.on_problem = reporter.policy_problem
            async with running_queue(
                data,
                dns_server.address,
                mx.port,
                self_addresses=(),
                mta_sts=mta_sts,
                verified_context=verified_tls_context(ca.ca_file),
                dnssec=True,
                retry=(3600.0,),
                tls_observer=reporter.observe_hop,
            ) as q:
                queues.append(q)
                await q.submit(["bob@remote.test", "dave@dane.test", "carol@ok.test"])

                def settled() -> bool:
                    entries = q.store.list_queue()
                    states = {r.address: (r.state, r.phase) for e in entries for r in e.recipients}
                    return states == {
                        "bob@remote.test": ("pending", "tls"),
                        "dave@dane.test": ("pending", "tls"),
                        "carol@ok.test": ("delivered", "end-of-data"),
                    }

                await q.wait(settled)
                assert [m.recipients for m in mx.messages] == [["carol@ok.test"]]
                clock.advance(86400)  # 12:00 the next day: yesterday's reports are due
                assert await reporter.tick() == [DAY]
                await q.wait(lambda: len(mx.messages) == 4)
            reports = [m for m in mx.messages if m.recipients == ["tls@reports.test"]]
            [at_remote] = [m for m in mx.messages if m.recipients == ["tlsrpt@remote.test"]]
    assert len(reports) == 2
    # The report to remote.test went over opportunistic TLS although its policy failed.
    assert parse(at_remote.data)[0]["TLS-Report-Domain"] == "remote.test"
    parsed = {
        str(message["TLS-Report-Domain"]): (message, report, name, relayed)
        for relayed in reports
        for message, report, name in [parse(relayed.data)]
    }
    assert set(parsed) == {"remote.test", "dane.test"}
    begin = calendar.timegm((2026, 12, 1, 0, 0, 0))

    message, report, name, relayed = parsed["remote.test"]
    check_schema(report)
    assert relayed.sender == "postmaster@example.test"
    assert message["TLS-Report-Submitter"] == "example.test"
    assert message["Subject"] == (
        f"Report Domain: remote.test Submitter: example.test Report-ID: <{report['report-id']}>"
    )
    assert name == f"example.test!remote.test!{begin}!{begin + 86399}.json.gz"
    assert "d=example.test" in str(message["DKIM-Signature"])
    assert report["organization-name"] == "Example Org"
    assert report["date-range"]["start-datetime"] == "2026-12-01T00:00:00Z"  # type: ignore[index]
    [entry] = report["policies"]  # type: ignore[misc]
    assert entry["policy"] == {
        "policy-type": "sts",
        "policy-string": [
            "version: STSv1",
            "mode: enforce",
            "mx: mx1.remote.test",
            "max_age: 86400",
        ],
        "policy-domain": "remote.test",
        "mx-host": ["mx1.remote.test"],
    }
    assert entry["summary"] == {
        "total-successful-session-count": 0,
        "total-failure-session-count": 1,
    }
    assert entry["failure-details"] == [
        {
            "result-type": "certificate-host-mismatch",
            "sending-mta-ip": "127.0.0.1",
            "receiving-ip": "127.0.0.1",
            "receiving-mx-hostname": MX,
            "failed-session-count": 1,
            "failure-reason-code": "X509_V_ERR_HOSTNAME_MISMATCH",
        }
    ]

    _, dane_report, _, _ = parsed["dane.test"]
    check_schema(dane_report)
    [dane_entry] = dane_report["policies"]  # type: ignore[misc]
    assert dane_entry["policy"]["policy-type"] == "tlsa"
    assert dane_entry["policy"]["policy-string"] == ["3 1 1 " + "00" * 32]
    [detail] = dane_entry["failure-details"]
    assert detail["result-type"] == "tlsa-invalid"
    assert detail["receiving-mx-hostname"] == "mx.dane.test"

    # The same report for remote.test went to the https rua (RFC 8460 §5.4).
    [(path, content_type, body)] = web.posts
    assert path == "/tlsrpt" and content_type == "application/tlsrpt+gzip"
    assert json.loads(gzip.decompress(body)) == report
