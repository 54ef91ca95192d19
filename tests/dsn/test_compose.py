"""Reports composed by todoku.dsn, read back with the standard email package."""

from __future__ import annotations

import email
from email import policy

import pytest

from tests.queue.reports import parse_report
from todoku.dsn.compose import compose
from todoku.dsn.model import RecipientReport, Report, ReportKind

ORIGINAL = b"From: alice@example.test\r\nSubject: plans\r\n\r\nsee you at 10\r\n"


def report(kind: ReportKind, lang: str = "en", **changes: object) -> Report:
    recipient = RecipientReport(
        final_recipient="bob@remote.test",
        original_recipient="rfc822;Bob@remote.test",
        action={"failure": "failed", "delay": "delayed", "success": "relayed"}[kind.value],
        status={"failure": "5.1.1", "delay": "4.4.1", "success": "2.0.0"}[kind.value],
        remote_mta="mx1.remote.test [192.0.2.1]",
        diagnostic="smtp; 550 5.1.1 <bob@remote.test>: User unknown"
        if kind is ReportKind.FAILURE
        else "",
        last_attempt=1_700_000_100.0,
        will_retry_until=1_700_432_000.0 if kind is ReportKind.DELAY else None,
        reason="userunknown" if kind is ReportKind.FAILURE else "delayed",
        detail="connect to mx1.remote.test: timed out" if kind is ReportKind.DELAY else "",
    )
    fields: dict[str, object] = {
        "kind": kind,
        "reporting_mta": "mx.example.test",
        "to": "alice@example.test",
        "queue_id": "Q1",
        "arrival_date": 1_700_000_000.0,
        "recipients": (recipient,),
        "original": ORIGINAL,
        "headers_only": False,
        "lang": lang,
        "envid": "E-7",
        "original_subject": "plans",
        "elapsed": 4 * 3600.0,
        "lifetime": 5 * 86400.0,
    }
    fields.update(changes)
    return Report(**fields)  # type: ignore[arg-type]


def test_failure_report_structure_and_fields() -> None:
    data = compose(report(ReportKind.FAILURE), now=1_700_000_200.0)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    parsed = parse_report(data)
    message = parsed.message
    assert message["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert message["To"] == "alice@example.test"
    assert message["Auto-Submitted"] == "auto-replied"
    assert parsed.per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert parsed.per_message["Original-Envelope-Id"] == "E-7"
    assert "2023" in parsed.per_message["Arrival-Date"]
    [recipient] = parsed.recipients
    assert recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert recipient["Original-Recipient"] == "rfc822;Bob@remote.test"
    assert (recipient["Action"], recipient["Status"]) == ("failed", "5.1.1")
    assert recipient["Remote-MTA"] == "dns; mx1.remote.test"
    assert recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@remote.test>: User unknown"
    assert parsed.returned.get_content_type() == "message/rfc822"
    assert b"see you at 10" in parsed.returned.as_bytes()
    assert "mx1.remote.test [192.0.2.1] said: 550 5.1.1" in parsed.human
    assert "part before the @" in parsed.human


def test_headers_only_when_ret_hdrs() -> None:
    parsed = parse_report(compose(report(ReportKind.FAILURE, headers_only=True)))
    assert parsed.returned.get_content_type() == "text/rfc822-headers"
    assert "see you at 10" not in parsed.message.as_string()
    assert "Subject: plans" in parsed.message.as_string()


def test_delay_report_says_how_long_and_until_when() -> None:
    parsed = parse_report(compose(report(ReportKind.DELAY)))
    assert parsed.subject == "Warning: could not send message for past 4 hours"
    assert "will keep trying until the message is 5 days old" in parsed.human
    [recipient] = parsed.recipients
    assert recipient["Action"] == "delayed"
    assert recipient["Will-Retry-Until"]
    assert parsed.returned.get_content_type() == "text/rfc822-headers"


@pytest.mark.parametrize("kind", list(ReportKind))
def test_japanese_reports(kind: ReportKind) -> None:
    parsed = parse_report(compose(report(kind, lang="ja")))
    assert any("\u3040" <= ch <= "\u30ff" for ch in parsed.human)  # kana
    if kind is ReportKind.DELAY:
        assert "5日" in parsed.human and "4時間" in parsed.subject
    message = email.message_from_bytes(compose(report(kind, lang="ja")), policy=policy.default)
    assert message["Subject"]  # encoded words decode cleanly


def test_utf8_recipient_makes_a_global_report() -> None:
    utf8 = report(ReportKind.FAILURE)
    recipient = utf8.recipients[0]
    changed = RecipientReport(
        **{
            **{f: getattr(recipient, f) for f in recipient.__slots__},
            "final_recipient": "ユーザー@remote.test",
        }
    )
    data = compose(report(ReportKind.FAILURE, recipients=(changed,)))
    parsed = parse_report(data)
    # RFC 6533 §3: the utf-8 address type, in a message/global-delivery-status part.
    assert parsed.message.get_param("report-type") == "global-delivery-status"
    assert parsed.recipients[0]["Final-Recipient"] == "utf-8; ユーザー@remote.test"


UTF8_ORIGINAL = (
    "From: jürgen@example.test\r\nSubject: Grüße\r\n\r\nHallo, schöne Grüße\r\n".encode()
)


def test_8bit_body_is_returned_byte_for_byte() -> None:
    # An 8BITMIME body with ASCII headers: a plain RFC 3464 report, the body unchanged.
    original = b"From: a@example.test\r\nSubject: hi\r\n\r\nna\xc3\xafve caf\xc3\xa9\r\n"
    data = compose(report(ReportKind.FAILURE, original=original))
    parsed = parse_report(data)
    assert parsed.message.get_param("report-type") == "delivery-status"
    assert parsed.returned.get_content_type() == "message/rfc822"
    assert parsed.returned["Content-Transfer-Encoding"] == "8bit"
    assert original in data


def test_utf8_headers_make_a_global_report() -> None:
    # RFC 6533 §6.1/§6.2: UTF-8 header fields are returned as message/global.
    data = compose(report(ReportKind.FAILURE, original=UTF8_ORIGINAL))
    parsed = parse_report(data)
    assert parsed.message.get_param("report-type") == "global-delivery-status"
    assert parsed.returned.get_content_type() == "message/global"
    assert UTF8_ORIGINAL in data
    assert parsed.recipients[0]["Status"] == "5.1.1"


def test_utf8_headers_of_a_delay_warning_are_global_headers() -> None:
    data = compose(report(ReportKind.DELAY, original=UTF8_ORIGINAL))
    parsed = parse_report(data)
    assert parsed.returned.get_content_type() == "message/global-headers"
    assert "Grüße".encode() in data and b"Hallo" not in data


def test_boundary_never_occurs_in_the_returned_message() -> None:
    data = compose(report(ReportKind.FAILURE))
    boundary = email.message_from_bytes(data, policy=policy.default).get_boundary()
    assert boundary and data.count(f"--{boundary}\r\n".encode()) == 3
    assert data.endswith(f"--{boundary}--\r\n".encode())
