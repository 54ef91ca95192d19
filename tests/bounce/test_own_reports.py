"""The reports todoku's own queue sends (todoku.dsn.compose) read back by the analyzer: a sender
who saves one of our bounces and runs `todoku explain` gets the same facts back."""

from __future__ import annotations

from dataclasses import replace

from todoku.bounce.analyze import analyze_bytes
from todoku.dsn.compose import compose
from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.outcome import PHASE_DNS, PHASE_EXPIRED, Outcome, Verdict

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


def test_an_outcome_survives_the_report_and_explain_unchanged() -> None:
    """One Outcome (todoku.outcome) from the queue, written into our report by
    RecipientReport.of and read back by `todoku explain`: recipient, action, status, reply code,
    remote host and reason come back as they went; a failure decided here names no remote."""
    remote = replace(
        Outcome.reply(
            "bob@remote.test",
            "rcpt",
            550,
            "5.1.1",
            "<bob@remote.test>: Recipient address rejected: User unknown",
            "mx1.remote.test [192.0.2.1]",
        ),
        reason="userunknown",
    )
    local = Outcome(
        "dave@gmial.com",
        Verdict.PERMANENT,
        PHASE_DNS,
        None,
        "",
        "Host or domain name not found: gmial.com (NXDOMAIN)",
        reason="hostunknown",
        status="5.1.2",
    )
    expired = replace(
        Outcome.reply("eve@slow.test", "rcpt", 451, "4.7.1", "Greylisted", "mx.slow.test"),
        verdict=Verdict.PERMANENT,
        phase=PHASE_EXPIRED,
        reason="expired",
        status="4.4.7",
        note="delivery time expired: could not deliver for 5 days",
    )
    for outcome in (remote, local, expired):
        data = our_report(ReportKind.FAILURE, RecipientReport.of(outcome, outcome.action))
        [diagnosis] = analyze_bytes(data, explain=True)
        assert (diagnosis.recipient, diagnosis.action, diagnosis.status, diagnosis.reason) == (
            outcome.recipient,
            outcome.action,
            outcome.status,
            outcome.reason,
        )
        assert diagnosis.reply_code == outcome.code
        assert diagnosis.hard == outcome.hard and diagnosis.permanent == outcome.permanent
        if outcome.decided_by == "local" and outcome.code is None:
            assert diagnosis.remote_mta == ""  # this server decided: no remote to name
        else:
            assert diagnosis.remote_mta == outcome.remote_mta.split(" [")[0]
