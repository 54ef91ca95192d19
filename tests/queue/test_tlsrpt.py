"""TLS reporting (RFC 8460) without sockets: the _smtp._tls record, how session outcomes map
onto the RFC's result types, the JSON report for a day with mixed results, and the message that
carries it, each parsed back with the standard library and checked against RFC 8460 §4.4, §5."""

from __future__ import annotations

import calendar
import email
import gzip
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from todoku.dns.mock import MockResolver
from todoku.dns.resolver import DnsStatus
from todoku.queue import routing, tlsrpt
from todoku.queue.model import Hop, TlsPolicy
from todoku.queue.mtasts import CachedPolicy, CertificateError, FetchError, MtaSts, PolicyCache
from todoku.queue.schedule import FakeClock
from todoku.queue.tlsrpt_send import RETRY_EVERY, ReporterSettings, TlsReporter

SUBMITTER = tlsrpt.Submitter("Example Org", "postmaster@example.test", "example.test")
DAY = "2026-12-01"
NOON = calendar.timegm((2026, 12, 1, 12, 0, 0))
STS_STRINGS = ("version: STSv1", "mode: enforce", "mx: mx1.remote.test", "max_age: 86400")


def test_record_rua_uris() -> None:
    assert tlsrpt.parse_record(
        ["v=TLSRPTv1; rua=mailto:tls@reports.test, https://reports.test/in"]
    ) == ("mailto:tls@reports.test", "https://reports.test/in")
    assert tlsrpt.parse_record(["v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@b.test;"]) == (
        "mailto:a@b.test",
    )
    # RFC 8460 §3: not exactly one TLSRPTv1 record → the domain takes no reports.
    assert tlsrpt.parse_record(["v=TLSRPTv1; rua=mailto:a@b.test"] * 2) is None
    assert tlsrpt.parse_record(["v=spf1 -all"]) is None
    assert tlsrpt.parse_record(["v=TLSRPTv1"]) is None  # no rua
    assert tlsrpt.parse_record(["v=TLSRPTv1; rua=ftp://x.test/"]) is None  # no usable scheme
    assert tlsrpt.parse_record(["v=TLSRPTv1; rua"]) is None  # malformed field
    many = ",".join(f"mailto:r{i}@b.test" for i in range(20))
    assert len(tlsrpt.parse_record([f"v=TLSRPTv1; rua={many}"]) or ()) == tlsrpt.MAX_RUA


def test_mailto_address() -> None:
    assert tlsrpt.mailto_address("mailto:tls%2Breports@b.test?subject=x") == "tls+reports@b.test"
    assert tlsrpt.mailto_address("mailto:no-at-sign") is None
    assert tlsrpt.mailto_address("mailto:a@b.test%0D%0ABcc:c@d.test") is None
    assert tlsrpt.mailto_address("https://b.test/") is None


def test_failure_results() -> None:
    sts = TlsPolicy("enforce", "remote.test", "sts")
    dane = TlsPolicy("dane", "remote.test", "dane")
    assert tlsrpt.failure_result(sts, "starttls", None) == (tlsrpt.STARTTLS_NOT_SUPPORTED, "")
    assert tlsrpt.failure_result(sts, "tls", 62) == (
        tlsrpt.CERTIFICATE_HOST_MISMATCH,
        "X509_V_ERR_HOSTNAME_MISMATCH",
    )
    assert tlsrpt.failure_result(sts, "tls", 10)[0] == tlsrpt.CERTIFICATE_EXPIRED  # type: ignore[index]
    assert tlsrpt.failure_result(sts, "tls", 20)[0] == tlsrpt.CERTIFICATE_NOT_TRUSTED  # type: ignore[index]
    assert tlsrpt.failure_result(sts, "tls", 999)[0] == tlsrpt.VALIDATION_FAILURE  # type: ignore[index]
    assert tlsrpt.failure_result(dane, "tls", -1)[0] == tlsrpt.TLSA_INVALID  # type: ignore[index]
    assert tlsrpt.failure_result(None, "connect", None) is None  # not a TLS session
    assert tlsrpt.failure_result(None, "greeting", None) is None


def sessions() -> list[tlsrpt.TlsSession]:
    sts = TlsPolicy("enforce", "remote.test", "sts", strings=STS_STRINGS, mx=("mx1.remote.test",))
    good = Hop("mx1.remote.test", "192.0.2.1", 10, sts, domain="remote.test")
    bad = Hop("mx1.remote.test", "192.0.2.2", 10, sts, domain="remote.test")
    plain = Hop("mx2.remote.test", "192.0.2.3", 20, None, domain="remote.test")
    made = [tlsrpt.session_for(good, "", "", "198.51.100.1", NOON) for _ in range(3)]
    made += [
        tlsrpt.session_for(bad, *tlsrpt.failure_result(sts, "tls", 62), "198.51.100.1", NOON)  # type: ignore[misc]
        for _ in range(2)
    ]
    made.append(tlsrpt.session_for(plain, tlsrpt.STARTTLS_NOT_SUPPORTED, "", "198.51.100.1", NOON))
    made.append(
        tlsrpt.TlsSession("remote.test", tlsrpt.NO_POLICY, tlsrpt.STS_POLICY_FETCH_ERROR, at=NOON)
    )
    return made


def check_schema(report: dict[str, object]) -> None:
    """The fields RFC 8460 §4.4 requires, with their JSON types."""
    assert set(report) >= {
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    }
    date_range = report["date-range"]
    assert isinstance(date_range, dict)
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert stamp.fullmatch(date_range["start-datetime"])
    assert stamp.fullmatch(date_range["end-datetime"])
    policies = report["policies"]
    assert isinstance(policies, list) and policies
    for entry in policies:
        assert entry["policy"]["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert isinstance(entry["policy"]["policy-domain"], str)
        for key in ("policy-string", "mx-host"):
            value = entry["policy"].get(key, [])
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        summary = entry["summary"]
        assert isinstance(summary["total-successful-session-count"], int)
        assert isinstance(summary["total-failure-session-count"], int)
        details = entry.get("failure-details", [])
        assert (
            sum(d["failed-session-count"] for d in details)
            == (summary["total-failure-session-count"])
        )
        for detail in details:
            assert detail["result-type"] in tlsrpt.RESULT_TYPES


def test_report_for_a_day_with_mixed_results() -> None:
    report = json.loads(
        gzip.decompress(
            tlsrpt.gzipped(tlsrpt.build_report(DAY, "remote.test", sessions(), SUBMITTER))
        )
    )
    check_schema(report)
    assert report["organization-name"] == "Example Org"
    assert report["contact-info"] == "postmaster@example.test"
    assert report["date-range"] == {
        "start-datetime": "2026-12-01T00:00:00Z",
        "end-datetime": "2026-12-01T23:59:59Z",
    }
    by_type = {
        (p["policy"]["policy-type"], len(p["policy"].get("policy-string", []))): p
        for p in report["policies"]
    }
    sts = by_type[("sts", 4)]
    assert sts["policy"]["policy-string"] == list(STS_STRINGS)
    assert sts["policy"]["mx-host"] == ["mx1.remote.test"]
    assert sts["summary"] == {
        "total-successful-session-count": 3,
        "total-failure-session-count": 2,
    }
    assert sts["failure-details"] == [
        {
            "result-type": "certificate-host-mismatch",
            "sending-mta-ip": "198.51.100.1",
            "receiving-ip": "192.0.2.2",
            "receiving-mx-hostname": "mx1.remote.test",
            "failed-session-count": 2,
            "failure-reason-code": "X509_V_ERR_HOSTNAME_MISMATCH",
        }
    ]
    none = by_type[("no-policy-found", 0)]
    assert none["summary"]["total-failure-session-count"] == 2
    assert sorted(d["result-type"] for d in none["failure-details"]) == [
        "starttls-not-supported",
        "sts-policy-fetch-error",
    ]


def test_failure_details_are_bounded() -> None:
    many = [
        tlsrpt.TlsSession(
            "remote.test", tlsrpt.NO_POLICY, tlsrpt.VALIDATION_FAILURE, receiving_ip=f"10.0.{i}.1"
        )
        for i in range(tlsrpt.MAX_DETAILS + 50)
    ]
    report = tlsrpt.build_report(DAY, "remote.test", many, SUBMITTER)
    [entry] = report["policies"]  # type: ignore[misc]
    assert len(entry["failure-details"]) == tlsrpt.MAX_DETAILS
    assert entry["summary"]["total-failure-session-count"] == tlsrpt.MAX_DETAILS + 50


def parse_mail(data: bytes) -> tuple[EmailMessage, dict[str, object], str]:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    human, attachment = message.iter_parts()
    assert human.get_content_type() == "text/plain"
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert attachment.get_content_disposition() == "attachment"
    report = json.loads(gzip.decompress(attachment.get_content()))
    return message, report, str(attachment.get_filename())


def test_mail_follows_rfc_8460_section_5() -> None:
    gz = tlsrpt.gzipped(tlsrpt.build_report(DAY, "remote.test", sessions(), SUBMITTER))
    data = tlsrpt.compose_email(
        day=DAY,
        domain="remote.test",
        submitter=SUBMITTER,
        sender="postmaster@example.test",
        recipients=["tls@reports.test"],
        report=gz,
        hostname="mx.example.test",
        now=NOON + 86400,
    )
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    message, report, name = parse_mail(data)
    rid = report["report-id"]
    assert message["Subject"] == (
        f"Report Domain: remote.test Submitter: example.test Report-ID: <{rid}>"
    )
    assert message["TLS-Report-Domain"] == "remote.test"
    assert message["TLS-Report-Submitter"] == "example.test"
    assert message["From"] == "postmaster@example.test"
    assert message["To"] == "tls@reports.test"
    begin, end = calendar.timegm((2026, 12, 1, 0, 0, 0)), calendar.timegm((2026, 12, 1, 23, 59, 59))
    assert name == f"example.test!remote.test!{begin}!{end}.json.gz"  # RFC 8460 §5.1
    check_schema(report)


async def test_recorded_sessions_survive_on_disk_and_a_torn_line_is_skipped(
    tmp_path: Path,
) -> None:
    queued: list[tuple[str, tuple[str, ...], bytes]] = []

    async def enqueue(sender: str, to: tuple[str, ...], data: bytes) -> None:
        queued.append((sender, to, data))

    class NoPost:
        async def post(self, url: str, body: bytes) -> None:
            raise AssertionError("no https rua here")

    resolver = MockResolver(
        txt_records={"_smtp._tls.remote.test": ["v=TLSRPTv1; rua=mailto:tls@reports.test"]}
    )
    clock = FakeClock(NOON)
    settings = ReporterSettings(SUBMITTER, "postmaster@example.test", "mx.example.test")
    directory = tmp_path / "tlsrpt"
    first = TlsReporter(directory, settings, resolver, enqueue, NoPost(), clock=clock)
    for session in sessions():
        first.record(session)
    await first.flush()
    with (directory / f"{DAY}.jsonl").open("a") as handle:
        handle.write('{"domain": "remote.test", "poli')  # a crash in the middle of a line
    # A new reporter (a restart) finds the day on disk.
    again = TlsReporter(directory, settings, resolver, enqueue, NoPost(), clock=clock)
    assert await again.tick() == []  # the day is not over
    clock.advance(12 * 3600 + 60)  # 00:01 the next day: too early (SEND_AFTER)
    assert await again.tick() == []
    clock.advance(3600)
    assert await again.tick() == [DAY]
    assert await again.tick() == []  # sent once
    [(sender, to, data)] = queued
    assert sender == "postmaster@example.test" and to == ("tls@reports.test",)
    _, report, _ = parse_mail(data)
    failures = sum(p["summary"]["total-failure-session-count"] for p in report["policies"])
    assert failures == 4
    assert (directory / f"{DAY}.sent").exists()


@pytest.mark.parametrize("status", ["nxdomain", "no record"])
async def test_a_domain_without_a_record_gets_no_report(tmp_path: Path, status: str) -> None:
    queued: list[bytes] = []

    async def enqueue(sender: str, to: tuple[str, ...], data: bytes) -> None:
        queued.append(data)

    txt = {"_smtp._tls.remote.test": ["v=spf1 -all"]} if status == "no record" else {}
    clock = FakeClock(NOON)
    reporter = TlsReporter(
        tmp_path,
        ReporterSettings(SUBMITTER, "postmaster@example.test", "mx.example.test"),
        MockResolver(txt_records=txt),
        enqueue,
        None,  # type: ignore[arg-type]
        clock=clock,
    )
    for session in sessions():
        reporter.record(session)
    clock.advance(86400)
    assert await reporter.tick() == [DAY]
    assert queued == []


class FailingFetcher:
    """An MTA-STS fetcher that fails the way it was told, or serves ``text``."""

    def __init__(self, failure: Exception | None = None, text: str = "") -> None:
        self.failure, self.text = failure, text

    async def fetch(self, domain: str) -> str:
        if self.failure is not None:
            raise self.failure
        return self.text


@pytest.mark.parametrize(
    ("fetcher", "result"),
    [
        (FailingFetcher(FetchError("HTTP status 404 Not Found")), "sts-policy-fetch-error"),
        (FailingFetcher(CertificateError("certificate not valid")), "sts-webpki-invalid"),
        (FailingFetcher(text="version: STSv1\nmode: sometimes\n"), "sts-policy-invalid"),
    ],
)
async def test_a_policy_that_cannot_be_had_is_recorded(
    tmp_path: Path, fetcher: FailingFetcher, result: str
) -> None:
    heard: list[tuple[str, str, str, object]] = []
    resolver = MockResolver(txt_records={"_mta-sts.remote.test": ["v=STSv1; id=1"]})
    mta_sts = MtaSts(resolver, fetcher, PolicyCache(tmp_path), FakeClock(NOON))
    mta_sts.on_problem = lambda *args: heard.append(args)
    lookup = await mta_sts.lookup("remote.test")
    assert lookup.policy is None
    [(domain, result_type, detail, cached)] = heard
    assert (domain, result_type, cached) == ("remote.test", result, None)
    assert detail  # the reason, for failure-reason-code
    reporter = TlsReporter(
        tmp_path / "tlsrpt",
        ReporterSettings(SUBMITTER, "postmaster@example.test", "mx.example.test"),
        resolver,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        clock=FakeClock(NOON),
    )
    reporter.policy_problem(domain, result_type, detail, None)
    await reporter.flush()
    lines = (tmp_path / "tlsrpt" / f"{DAY}.jsonl").read_text().splitlines()
    sessions = [tlsrpt.TlsSession.from_json(line) for line in lines]
    report = tlsrpt.build_report(DAY, domain, [s for s in sessions if s], SUBMITTER)
    [entry] = report["policies"]  # type: ignore[misc]
    assert entry["policy"]["policy-type"] == "no-policy-found"
    assert entry["failure-details"][0]["result-type"] == result


async def test_an_enforce_policy_that_refuses_every_mx_is_recorded(tmp_path: Path) -> None:
    heard: list[tuple[str, str, str, object]] = []
    resolver = MockResolver(
        mx_records={"remote.test": [(10, "mx9.remote.test")]},
        hosts={"mx9.remote.test": ["192.0.2.9"]},
        txt_records={"_mta-sts.remote.test": ["v=STSv1; id=1"]},
    )
    policy_text = "version: STSv1\nmode: enforce\nmx: mx1.remote.test\nmax_age: 86400\n"
    mta_sts = MtaSts(resolver, FailingFetcher(text=policy_text), PolicyCache(tmp_path))
    mta_sts.on_problem = lambda *args: heard.append(args)
    found = await routing.route(
        resolver, "remote.test", is_self=lambda host, ip: False, mta_sts=mta_sts
    )
    assert found.failure is not None and not found.hops
    [(domain, result, _, cached)] = heard
    assert (domain, result) == ("remote.test", "validation-failure")
    assert isinstance(cached, CachedPolicy) and cached.policy.mx == ("mx1.remote.test",)


async def test_a_dns_failure_retries_one_domain_without_resending_the_others(
    tmp_path: Path,
) -> None:
    queued: list[tuple[str, ...]] = []

    async def enqueue(sender: str, to: tuple[str, ...], data: bytes) -> None:
        queued.append(to)

    resolver = MockResolver(
        txt_records={
            "_smtp._tls.a.test": ["v=TLSRPTv1; rua=mailto:tls@a.test"],
            "_smtp._tls.b.test": ["v=TLSRPTv1; rua=mailto:tls@b.test"],
        },
        fail={"_smtp._tls.b.test": DnsStatus.SERVFAIL},
    )
    clock = FakeClock(NOON)
    settings = ReporterSettings(SUBMITTER, "postmaster@example.test", "mx.example.test")
    reporter = TlsReporter(tmp_path, settings, resolver, enqueue, None, clock=clock)  # type: ignore[arg-type]
    for domain in ("a.test", "b.test", "c.test"):
        reporter.record(tlsrpt.TlsSession(domain, tlsrpt.NO_POLICY, "", at=NOON))
    clock.advance(86400)
    assert await reporter.tick() == []  # b.test's record could not be looked up
    assert queued == [("tls@a.test",)]
    del resolver.fail["_smtp._tls.b.test"]
    assert await reporter.tick() == []  # not again at once: every RETRY_EVERY
    clock.advance(RETRY_EVERY)
    # A restart in between: what was done is on disk.
    again = TlsReporter(tmp_path, settings, resolver, enqueue, None, clock=clock)  # type: ignore[arg-type]
    assert await again.tick() == [DAY]
    assert queued == [("tls@a.test",), ("tls@b.test",)]


async def test_a_domain_that_keeps_failing_is_given_up_after_a_day(tmp_path: Path) -> None:
    resolver = MockResolver(fail={"_smtp._tls.b.test": DnsStatus.TIMEOUT})
    clock = FakeClock(NOON)
    settings = ReporterSettings(SUBMITTER, "postmaster@example.test", "mx.example.test")
    reporter = TlsReporter(tmp_path, settings, resolver, None, None, clock=clock)  # type: ignore[arg-type]
    reporter.record(tlsrpt.TlsSession("b.test", tlsrpt.NO_POLICY, "", at=NOON))
    clock.advance(86400)
    assert await reporter.tick() == []
    clock.advance(86400)
    assert await reporter.tick() == [DAY]
    assert (tmp_path / f"{DAY}.sent").exists() and not (tmp_path / f"{DAY}.done").exists()
