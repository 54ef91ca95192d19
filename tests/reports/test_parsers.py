"""Received reports (todoku.reports): DMARC aggregate XML (RFC 7489 Appendix C) in zip, gzip or
plain, TLS reports (RFC 8460) in gzip JSON, and what hostile input meets: gzip and zip bombs,
DTDs with entities (billion laughs, external files), deep nesting, and random bytes."""

from __future__ import annotations

import calendar
import gzip
import io
import json
import time
import zipfile
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.queue import tlsrpt as outbound
from todoku.reports import ReportError, dmarc, tlsrpt
from todoku.reports.mail import read_report, reports_in
from todoku.reports.unpack import gunzip, unpack, unzip

DMARC_XML = b"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>dmarc-reports@receiver.example</email>
    <report_id>r-2026-12-01-42</report_id>
    <date_range><begin>1796083200</begin><end>1796169599</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.org</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip><count>12</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.org</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>example.org</domain><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.66</source_ip><count>3</count>
      <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results><spf><domain>spoofer.example</domain><result>softfail</result></spf></auth_results>
  </record>
</feedback>
"""


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("wrap", ["plain", "gzip", "zip"])
def test_dmarc_aggregate_report_in_each_wrapping(wrap: str) -> None:
    data = {
        "plain": DMARC_XML,
        "gzip": gzip.compress(DMARC_XML),
        "zip": zipped("receiver.example!example.org!1796083200!1796169599.xml", DMARC_XML),
    }[wrap]
    found = read_report(data, "report")
    assert found.kind == "dmarc" and found.problem == ""
    report = found.report
    assert isinstance(report, dmarc.DmarcReport)
    assert (report.org_name, report.domain, report.policy) == (
        "receiver.example",
        "example.org",
        "quarantine",
    )
    assert (report.begin, report.end, report.report_id) == (
        1796083200,
        1796169599,
        "r-2026-12-01-42",
    )
    assert report.messages == 15 and report.failed == 3
    good, bad = report.rows
    assert good.passed and good.auth[0] == dmarc.AuthResult("dkim", "example.org", "pass", "s1")
    assert not bad.passed and bad.disposition == "quarantine"
    assert bad.auth == (dmarc.AuthResult("spf", "spoofer.example", "softfail"),)
    line = dmarc.describe(report)
    assert line.startswith("dmarc 2026-12-01 receiver.example example.org: 15 messages")
    assert "3 failed DMARC (198.51.100.66: 3)" in line


def test_dmarc_with_a_namespace_parses() -> None:
    namespaced = DMARC_XML.replace(
        b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">'
    )
    assert dmarc.parse(namespaced).messages == 15


@pytest.mark.parametrize(
    "hostile",
    [
        # billion laughs: entities that expand to gigabytes
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
            b"<feedback>&lol3;</feedback>"
        ),
        # an external entity: a file of this machine
        (
            b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<feedback>&x;</feedback>"
        ),
        # a DTD from the network
        b'<?xml version="1.0"?><!DOCTYPE feedback SYSTEM "http://192.0.2.1/evil.dtd"><feedback/>',
    ],
)
def test_dtds_and_entities_are_refused(hostile: bytes) -> None:
    with pytest.raises(ReportError, match="DTD or entity"):
        dmarc.parse(hostile)


def test_dmarc_bounds() -> None:
    deep = b"<feedback>" + b"<a>" * 100 + b"</a>" * 100 + b"</feedback>"
    with pytest.raises(ReportError, match="nested deeper"):
        dmarc.parse(deep)
    with pytest.raises(ReportError, match="not well-formed"):
        dmarc.parse(b"<feedback><report_metadata>")
    with pytest.raises(ReportError, match="not a DMARC"):
        dmarc.parse(b"<html/>")
    with pytest.raises(ReportError, match="not a number"):
        dmarc.parse(DMARC_XML.replace(b"<count>12</count>", b"<count>many</count>"))


def test_gzip_bomb_is_refused_without_unpacking_it() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros, about 64 KiB packed
    assert len(bomb) < 200_000
    started = time.monotonic()
    with pytest.raises(ReportError, match="unpacks to more than"):
        unpack(bomb)
    assert time.monotonic() - started < 5
    with pytest.raises(ReportError, match="unpacks to more than 1000 bytes"):
        gunzip(gzip.compress(b"x" * 5000), limit=1000)
    with pytest.raises(ReportError, match="cut short"):
        gunzip(gzip.compress(DMARC_XML)[:-20])


def test_zip_bomb_is_refused() -> None:
    bomb = zipped("bomb.xml", b"\0" * (64 * 1024 * 1024))
    with pytest.raises(ReportError, match="unpacks to more than"):
        unpack(bomb)
    with pytest.raises(ReportError, match="unpacks to more than 1000 bytes"):
        unzip(zipped("a.xml", b"x" * 5000), limit=1000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(40):
            archive.writestr(f"{n}.xml", b"<feedback/>")
    with pytest.raises(ReportError, match="more than 16 files"):
        unpack(buffer.getvalue())


SUBMITTER = outbound.Submitter("Sender Org", "tls@sender.example", "sender.example")


def outbound_report() -> bytes:
    sessions = [
        outbound.TlsSession("example.org", outbound.STS, "", "mx.example.org", "192.0.2.1"),
        outbound.TlsSession(
            "example.org",
            outbound.STS,
            outbound.CERTIFICATE_EXPIRED,
            "mx.example.org",
            "192.0.2.1",
            "198.51.100.7",
            "X509_V_ERR_CERT_HAS_EXPIRED",
            policy_strings=("version: STSv1", "mode: enforce", "mx: mx.example.org", "max_age: 1"),
            policy_mx=("mx.example.org",),
        ),
    ]
    return outbound.gzipped(outbound.build_report("2026-12-01", "example.org", sessions, SUBMITTER))


def test_a_tls_report_as_todoku_sends_it_reads_back() -> None:
    found = read_report(outbound_report(), "x.json.gz", "application/tlsrpt+gzip")
    report = found.report
    assert found.kind == "tlsrpt" and isinstance(report, tlsrpt.TlsReport)
    assert (report.organization, report.contact) == ("Sender Org", "tls@sender.example")
    assert report.start == "2026-12-01T00:00:00Z" and report.end == "2026-12-01T23:59:59Z"
    assert (report.successes, report.failures) == (1, 1)
    failing = next(p for p in report.policies if p.failures)
    assert failing.policy_type == "sts" and failing.mx_hosts == ("mx.example.org",)
    assert failing.details == (
        tlsrpt.TlsFailure(
            "certificate-expired",
            1,
            "198.51.100.7",
            "192.0.2.1",
            "mx.example.org",
            "X509_V_ERR_CERT_HAS_EXPIRED",
        ),
    )
    assert tlsrpt.describe(report) == (
        "tlsrpt 2026-12-01 Sender_Org example.org: 2 sessions, 1 failed (certificate-expired: 1)"
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"[]", "not a JSON object"),
        (b'{"date-range": {}, "policies": []}', "not a string"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not JSON"),
        (b"\xff\xfe", "not JSON"),
        (
            json.dumps(
                {
                    "organization-name": "o",
                    "report-id": "r",
                    "date-range": {"start-datetime": "a", "end-datetime": "b"},
                    "policies": [{"policy": {}, "summary": {}}],
                }
            ).encode(),
            "not a string",
        ),
    ],
)
def test_broken_tls_reports(document: bytes, problem: str) -> None:
    with pytest.raises(ReportError, match=problem):
        tlsrpt.parse(document)


def test_reports_in_a_message() -> None:
    tls_mail = outbound.compose_email(
        day="2026-12-01",
        domain="example.org",
        submitter=SUBMITTER,
        sender="tls@sender.example",
        recipients=["postmaster@example.org"],
        report=outbound_report(),
        hostname="mx.sender.example",
        now=calendar.timegm((2026, 12, 2, 1, 0, 0)),
    )
    [found] = reports_in(tls_mail)
    assert found.kind == "tlsrpt" and found.report is not None
    dmarc_mail = EmailMessage()
    dmarc_mail["Subject"] = "Report domain: example.org Submitter: receiver.example"
    dmarc_mail.set_content("A DMARC aggregate report.")
    dmarc_mail.add_attachment(
        zipped("r.xml", DMARC_XML), maintype="application", subtype="zip", filename="r.zip"
    )
    dmarc_mail.add_attachment(b"junk", maintype="application", subtype="gzip", filename="x.gz")
    first, second = reports_in(dmarc_mail.as_bytes())
    assert first.kind == "dmarc" and isinstance(first.report, dmarc.DmarcReport)
    assert second.report is None and second.problem == "neither XML nor JSON"
    assert "unreadable" in second.describe()
    assert reports_in(b"Subject: hello\r\n\r\njust a letter\r\n") == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    for prefix in (b"", b"\x1f\x8b", b"PK\x03\x04", b"<feedback>", b"{"):
        read_report(prefix + data)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=20), c),
        max_leaves=30,
    )
)
def test_random_json_never_raises(value: object) -> None:
    read_report(json.dumps(value).encode())
