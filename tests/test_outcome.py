"""The one delivery outcome (todoku.outcome): what a reply means, who decided, and that the
store's row and the report's lines are derived from it without losing or re-splitting facts."""

from __future__ import annotations

from dataclasses import replace

from todoku.dsn.model import RecipientReport
from todoku.outcome import (
    CONNECT,
    PHASE_DNS,
    PHASE_EXPIRED,
    Outcome,
    Verdict,
)
from todoku.store.api import QueueRecipient, RecipientResult


def test_a_reply_decides_verdict_status_and_who_decided() -> None:
    refused = Outcome.reply(
        "bob@remote.test", "rcpt", 550, "5.1.1", "no such user", "mx [192.0.2.1]"
    )
    assert (refused.verdict, refused.action, refused.status) == (
        Verdict.PERMANENT,
        "failed",
        "5.1.1",
    )
    assert refused.decided_by == "remote" and refused.remote_lines == ("no such user",)
    assert refused.diagnostic == "smtp; 550 5.1.1 no such user"
    later = Outcome.reply("bob@remote.test", "rcpt", 451, "", "try later", "mx [192.0.2.1]")
    assert (later.action, later.status, later.permanent) == ("delayed", "4.0.0", False)
    taken = Outcome.reply("bob@remote.test", "end-of-data", 250, "", "ok", "mx [192.0.2.1]")
    assert (taken.action, taken.status, taken.delivered) == ("delivered", "2.0.0", True)


def test_no_reply_is_temporary_and_decided_here() -> None:
    refused = Outcome.reply("", CONNECT, None, "", "connect to mx:25: Connection refused", "mx")
    assert (refused.verdict, refused.status) == (Verdict.TEMPORARY, "4.4.1")
    assert refused.decided_by == "local" and refused.remote_lines == ()
    assert refused.diagnostic == ""  # our words are never a remote's Diagnostic-Code
    closed = Outcome.reply("", "data", None, "", "connection closed", "mx")
    assert closed.status == "4.4.2"


def test_hard_is_about_sending_again_not_about_the_status_class() -> None:
    unknown = replace(
        Outcome.reply("a@b.test", "rcpt", 550, "5.1.1", "unknown", "mx"), reason="userunknown"
    )
    full = replace(
        Outcome.reply("a@b.test", "rcpt", 552, "5.2.2", "mailbox full", "mx"), reason="mailboxfull"
    )
    assert unknown.hard and not full.hard
    assert not replace(unknown, verdict=Verdict.TEMPORARY).hard  # still retried: not returned


def test_the_store_row_and_back_keep_every_fact() -> None:
    outcome = replace(
        Outcome.reply("Bob@Remote.TEST", "rcpt", 550, "5.1.1", "line one\nline two", "mx"),
        reason="userunknown",
    )
    row = RecipientResult.of(outcome)
    assert (row.state, row.domain, row.text) == ("failed", "remote.test", "line one\nline two")
    stored = QueueRecipient(
        row.address,
        None,
        (),
        row.state,
        row.text,
        row.phase,
        row.code,
        row.enhanced,
        row.remote_mta,
        row.reason,
        row.status,
    )
    assert stored.outcome == outcome


def test_expiry_keeps_the_last_reply_as_the_diagnostic_and_says_what_we_decided() -> None:
    last = Outcome.reply(
        "a@b.test", "rcpt", 451, "4.7.1", "greylisted, come back", "mx [192.0.2.1]"
    )
    expired = replace(
        last,
        verdict=Verdict.PERMANENT,
        phase=PHASE_EXPIRED,
        reason="expired",
        status="4.4.7",
        note="delivery time expired: could not deliver for 5 days",
    )
    assert expired.decided_by == "local"
    assert expired.describe().startswith("expired (mx [192.0.2.1]): delivery time expired")
    report = RecipientReport.of(expired, "failed", original_recipient="rfc822;a@b.test")
    assert (report.action, report.status, report.reason) == ("failed", "4.4.7", "expired")
    assert report.diagnostic == "smtp; 451 4.7.1 greylisted, come back"
    assert RecipientResult.of(expired).text == "greylisted, come back"


def test_a_failure_decided_here_without_any_reply_reports_our_words_as_detail() -> None:
    dns = Outcome(
        "a@nowhere.test",
        Verdict.PERMANENT,
        PHASE_DNS,
        None,
        "",
        "no such domain: nowhere.test",
        reason="hostunknown",
        status="5.1.2",
    )
    report = RecipientReport.of(dns, "failed")
    assert (report.diagnostic, report.remote_mta) == ("", "")
    assert report.detail == "no such domain: nowhere.test"
    assert dns.decided_by == "local"
