"""``todoku reports list`` against a real server (issue 18's received reports): a DMARC aggregate
report (zip) and a TLS report (gzip JSON) arrive over SMTP at postmaster@, as other servers send
them, and the command lists one line per report, or JSON; a hostile attachment is named as
unreadable, not a traceback."""

from __future__ import annotations

import calendar
import json
import smtplib
from collections.abc import Callable
from email.message import EmailMessage

from tests.conftest import TodokuServer
from tests.reports.test_parsers import DMARC_XML, SUBMITTER, outbound_report, zipped
from todoku.queue import tlsrpt

POSTMASTER = "postmaster@example.test"


def dmarc_mail(attachment: bytes, name: str) -> bytes:
    message = EmailMessage()
    message["From"] = "dmarc-reports@receiver.example"
    message["To"] = POSTMASTER
    message["Subject"] = "Report domain: example.org Submitter: receiver.example"
    message.set_content("A DMARC aggregate report.")
    message.add_attachment(attachment, maintype="application", subtype="zip", filename=name)
    return message.as_bytes()


def test_reports_list_shows_what_arrived(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(start=False, services=("smtp",))
    server.add_user(POSTMASTER)
    server.start()
    tls_mail = tlsrpt.compose_email(
        day="2026-12-01",
        domain="example.org",
        submitter=SUBMITTER,
        sender="tls@sender.example",
        recipients=[POSTMASTER],
        report=outbound_report(),
        hostname="mx.sender.example",
        now=calendar.timegm((2026, 12, 2, 1, 0, 0)),
    )
    bomb = zipped("bomb.xml", b"\0" * (40 * 1024 * 1024))
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.sendmail(
            "dmarc-reports@receiver.example",
            [POSTMASTER],
            dmarc_mail(zipped("r.xml", DMARC_XML), "r.zip"),
        )
        client.sendmail("tls@sender.example", [POSTMASTER], tls_mail)
        client.sendmail("x@hostile.example", [POSTMASTER], dmarc_mail(bomb, "bomb.zip"))
        client.sendmail("friend@elsewhere.example", [POSTMASTER], b"Subject: hi\r\n\r\nhello\r\n")
    lines = server.cli("reports", "list").stdout.splitlines()
    assert len(lines) == 4, lines
    assert "dmarc 2026-12-01 receiver.example example.org: 15 messages from 2 addresses" in lines[0]
    assert "3 failed DMARC (198.51.100.66: 3)" in lines[0]
    assert "tlsrpt 2026-12-01 Sender_Org example.org: 2 sessions, 1 failed" in lines[1]
    assert "bomb.zip: unreadable: unpacks to more than" in lines[2]
    assert lines[3] == f"-- 3 reports in {POSTMASTER}"
    records = [
        json.loads(line) for line in server.cli("reports", "list", "--json").stdout.splitlines()
    ]
    assert [r["kind"] for r in records] == ["dmarc", "tlsrpt", ""]
    assert records[0]["report"]["rows"][1]["source_ip"] == "198.51.100.66"
    assert records[1]["report"]["policies"][0]["domain"] == "example.org"
    assert records[2]["report"] is None and "unpacks to more than" in records[2]["problem"]
