"""The reports todoku's own queue sends (todoku.dsn.compose) read back by the analyzer: a sender
who saves one of our bounces and runs `todoku explain` gets the same facts back."""

from __future__ import annotations

from todoku.bounce.analyze import analyze_bytes
from todoku.dsn.compose import compose
from todoku.dsn.model import RecipientReport, Report, ReportKind

ORIGINAL = b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: plans\r\n\r\nsee you\r\n"


def our_report(kind: ReportKind, recipient: RecipientReport, lang: str = "en") -> bytes:
    return compose(
        Report(
            kind=kind,
            reporting_mta="mx.example.test",
            to="alice@example.test",
            queue_id="Q1",
            arrival_date=1_700_000_000.0,
            recipients=(recipient,),
            original=ORIGINAL,
            headers_only=False,
            lang=lang,
            original_subject="plans",
            elapsed=4 * 3600.0,
            lifetime=5 * 86400.0,
        ),
        now=1_700_014_400.0,
    )


def test_our_failure_report() -> None:
    data = our_report(
        ReportKind.FAILURE,
        RecipientReport(
            final_recipient="bob@remote.test",
            original_recipient="rfc822;bob@remote.test",
            action="failed",
            status="5.1.1",
            remote_mta="mx1.remote.test",
            diagnostic="smtp; 550 5.1.1 <bob@remote.test>: Recipient address rejected: User unknown",
            reason="userunknown",
        ),
    )
    [diagnosis] = analyze_bytes(data, explain=True)
    assert (diagnosis.recipient, diagnosis.reason, diagnosis.status, diagnosis.reply_code) == (
        "bob@remote.test",
        "userunknown",
        "5.1.1",
        550,
    )
    assert diagnosis.remote_mta == "mx1.remote.test" and diagnosis.permanent


def test_our_relay_refusal_and_host_unknown_reports_in_japanese() -> None:
    relay = our_report(
        ReportKind.FAILURE,
        RecipientReport(
            final_recipient="carol@far.test",
            original_recipient=None,
            action="failed",
            status="5.7.1",
            remote_mta="mx.far.test",
            diagnostic="smtp; 554 5.7.1 <carol@far.test>: Relay access denied",
            reason="norelaying",
        ),
        lang="ja",
    )
    [diagnosis] = analyze_bytes(relay, lang="ja", explain=True)
    assert diagnosis.reason == "norelaying" and "587" in diagnosis.remedy
    nxdomain = our_report(
        ReportKind.FAILURE,
        RecipientReport(
            final_recipient="dave@gmial.com",
            original_recipient=None,
            action="failed",
            status="5.1.2",
            detail="Host or domain name not found: gmial.com (NXDOMAIN)",
            reason="hostunknown",
        ),
    )
    [diagnosis] = analyze_bytes(nxdomain, explain=True)
    assert diagnosis.reason == "hostunknown" and diagnosis.status == "5.1.2"
    assert "gmail.com" in diagnosis.remedy


def test_our_delay_warning_says_nothing_to_do_yet() -> None:
    data = our_report(
        ReportKind.DELAY,
        RecipientReport(
            final_recipient="bob@remote.test",
            original_recipient=None,
            action="delayed",
            status="4.4.1",
            remote_mta="mx1.remote.test",
            will_retry_until=1_700_432_000.0,
            detail="connect to mx1.remote.test[192.0.2.1]:25: Connection timed out",
            reason="delayed",
        ),
    )
    [diagnosis] = analyze_bytes(data, explain=True)
    assert diagnosis.recipient == "bob@remote.test" and diagnosis.status == "4.4.1"
    assert diagnosis.permanent is False
    assert "Nothing to do yet" in diagnosis.remedy


def test_our_expiry_bounce_is_returned_not_retried() -> None:
    """After max_lifetime todoku returns the message with Action: failed and Status: 4.4.7 (the
    last remote reply, a temporary one, stays the diagnostic): nothing retries it any more."""
    data = our_report(
        ReportKind.FAILURE,
        RecipientReport(
            final_recipient="bob@remote.test",
            original_recipient=None,
            action="failed",
            status="4.4.7",
            remote_mta="mx1.remote.test",
            diagnostic="smtp; 451 4.3.0 Temporary lookup failure",
            detail="delivery time expired: could not deliver for 5 days; last error: 451 4.3.0 "
            "Temporary lookup failure",
            reason="expired",
        ),
    )
    [diagnosis] = analyze_bytes(data, explain=True)
    assert (diagnosis.reason, diagnosis.action, diagnosis.permanent, diagnosis.hard) == (
        "expired",
        "failed",
        True,
        False,
    )
    assert "still" not in diagnosis.remedy.lower() and "returned" in diagnosis.remedy
