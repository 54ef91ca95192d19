"""Classification by meaning: the status code as a prior, words, the SMTP phase, vendor tables."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from todoku.bounce import REASONS, classify_reply, knowledge
from todoku.bounce.classify import judge_evidence, judge_reply, use_knowledge
from todoku.bounce.extract import Evidence


@pytest.fixture
def full_knowledge() -> Iterator[None]:
    yield
    use_knowledge()


def test_too_many_recipients_at_rcpt_is_a_limit_not_a_throttle() -> None:
    # X.5.3 names the number of recipients of this transaction: not a connection rate, which
    # would make the queue hold back the whole destination.
    assert classify_reply(452, "4.5.3", "Too many recipients", "rcpt") == "exceedlimit"
    assert classify_reply(452, "4.5.3", "Too many recipients") == "exceedlimit"
    assert classify_reply(421, "4.7.0", "Too many connections from your IP") == "toomanyconn"


def test_a_specific_status_outweighs_canned_words() -> None:
    assert classify_reply(550, "5.1.1", "Service unavailable") == "userunknown"
    assert classify_reply(550, "5.2.2", "Service unavailable") == "mailboxfull"


def test_a_vague_status_yields_to_words() -> None:
    assert classify_reply(554, "5.7.1", "Recipient address rejected: No relaying") == "norelaying"
    assert classify_reply(550, "5.7.1", "Mailbox full") == "mailboxfull"
    assert classify_reply(550, "5.0.0", "DNS lookup failure: host.example.") == "hostunknown"


def test_general_wording() -> None:
    assert classify_reply(550, None, "No mx record found for domain example.") == "hostunknown"
    assert classify_reply(550, None, "improper use of 8-bit data in message header") == (
        "contenterror"
    )
    assert classify_reply(None, None, "Delivery failed 20 attempts") == "expired"
    assert classify_reply(421, None, "Ip frequency limited") == "toomanyconn"
    assert classify_reply(
        550,
        "5.2.1",
        "The user you are trying to contact is receiving mail "
        "at a rate that prevents additional messages from being delivered.",
    ) == ("speeding")


def test_the_phase_places_a_bare_refusal() -> None:
    assert classify_reply(554, None, "Access denied", "connect") == "blocked"
    assert classify_reply(554, None, "Access denied", "mail") == "rejected"
    assert classify_reply(554, None, "Access denied", "rcpt") != "blocked"
    # The phase read from the text when the caller does not know it.
    assert classify_reply(550, None, "Access denied (in reply to MAIL FROM command)") == (
        "rejected"
    )
    # An unknown address refused at MAIL FROM is the sender's.
    assert classify_reply(550, "5.1.1", "User unknown", "mail") == "rejected"


def test_vendor_codes_only_when_the_vendor_is_identified() -> None:
    text = "550 5.7.520 Access denied [{host}]"
    assert classify_reply(550, "5.7.520", text.format(host="x.mail.protection.outlook.com")) == (
        "policyviolation"
    )
    assert classify_reply(550, "5.7.520", text.format(host="mx.example.net")) != ("policyviolation")


def test_every_verdict_says_why() -> None:
    verdict = judge_reply(550, "5.1.1", "User unknown (in reply to RCPT TO command)")
    assert verdict.reason == "userunknown"
    assert any(
        e.startswith("status 5.1.1 (RFC 3463: Bad destination mailbox") for e in verdict.evidence
    ), verdict.evidence
    assert any("'user unknown'" in e for e in verdict.evidence), verdict.evidence
    assert "phase RCPT" in verdict.evidence
    assert judge_reply(None, None, "").evidence == ()


@pytest.mark.usefixtures("full_knowledge")
def test_leaving_a_family_out_drops_only_its_own_phrases() -> None:
    outlook = "550 domain [example.com] mismatches client ip 192.0.2.1."
    assert classify_reply(550, None, outlook) == "requireptr"
    use_knowledge(exclude_family="Outlook")
    assert classify_reply(550, None, outlook) != "requireptr"
    # A phrase seen in several families, or documented, stays.
    assert classify_reply(550, None, "Relay access denied") == "norelaying"
    assert classify_reply(550, None, "Access denied, banned sending IP") == "blocked"
    use_knowledge()
    assert classify_reply(550, None, outlook) == "requireptr"


@pytest.mark.usefixtures("full_knowledge")
def test_a_vendor_code_table_is_used_for_its_own_vendor_even_when_left_out() -> None:
    # Cox's published table: AUP#CDRBL is a block of the sending IP, whatever "sender rejected"
    # before it says. Documented knowledge stays when the Cox family is left out.
    cox = (
        "550 5.1.0 <a@example.net> sender rejected. Refer to Error Codes section at "
        "https://www.cox.com/residential/support/email-error-codes.html AUP#CDRBL"
    )
    use_knowledge(exclude_family="Cox")
    verdict = judge_reply(550, "5.1.0", cox, "mail")
    assert verdict.reason == "blocked", verdict.evidence
    assert any(e.startswith("Cox code cdrbl") for e in verdict.evidence), verdict.evidence
    # The same tag from a server that is not Cox's means nothing.
    assert classify_reply(550, "5.1.0", "550 5.1.0 sender rejected AUP#CDRBL", "mail") == (
        "rejected"
    )


def test_the_knowledge_is_well_formed() -> None:
    for group in knowledge.PHRASES:
        assert group.reason in REASONS, group.reason
        for phrase in group.phrases:
            re.compile(phrase.pattern)
            assert phrase.pattern == phrase.pattern.lower() or "\\" in phrase.pattern
            assert phrase.seen == tuple(sorted(set(phrase.seen))), phrase
    for status in knowledge.STATUS.values():
        assert status.reason in REASONS and status.strength in (1, 2, 3, 4)
    for vendor in knowledge.VENDORS:
        assert vendor.doc.startswith(("https://", "http://"))
        assert all(reason in REASONS for reason in vendor.codes.values())


def test_a_refusal_at_rcpt_without_a_cause_is_about_the_recipient() -> None:
    # RCPT TO names the recipient and nothing else: a refusal of it that gives no cause is a
    # refusal of that address (RFC 5321 §3.3).
    assert classify_reply(550, None, "Rejected", "rcpt") == "userunknown"
    assert classify_reply(554, "5.0.0", "Transaction failed", "rcpt") == "userunknown"
    # Not when the reply names a cause, nor at another command, nor when no command is known.
    assert classify_reply(550, None, "Relay access denied", "rcpt") == "norelaying"
    assert classify_reply(550, None, "Rejected", "data") != "userunknown"
    assert classify_reply(550, None, "Rejected") == "onhold"


def _recipient(diagnostic: str, context: str = "", status: str = "") -> Evidence:
    return Evidence("neko@example.org", status=status, diagnostic=diagnostic, context=context)


def test_a_reply_quoting_the_recipient_answered_rcpt() -> None:
    # No phase in the report, but the server quotes the address it refuses, which only RCPT TO
    # carries: a bare refusal of it is about the recipient.
    verdict = judge_evidence("bounce", _recipient("542 neko@example.org Rejected"))
    assert verdict.reason == "userunknown", verdict.evidence
    assert judge_evidence("bounce", _recipient("542 Rejected")).reason != "userunknown"
    # The report's own heading is not the server's words.
    assert judge_evidence("bounce", _recipient("neko@example.org Rejected")).reason != (
        "userunknown"
    )


def test_a_refused_greeting_is_about_the_client() -> None:
    # 554 in place of the 220 greeting (RFC 5321 §3.1): the server will not talk to this client.
    text = "mx.example.org ESMTP No SMTP service here"
    assert classify_reply(554, None, text) == "blocked"
    assert judge_evidence("bounce", _recipient(f"554 {text}")).reason == "blocked"
    # The same words without the greeting's shape say nothing of the client.
    assert classify_reply(554, None, "No SMTP service here") != "blocked"
    assert classify_reply(250, None, text) != "blocked"


def test_words_wrapped_across_lines_are_read_as_one_sentence() -> None:
    context = (
        "<neko@example.org>: host mx.example.org[192.0.2.1] refused to\n"
        "    talk to me: 421 Service refused, please try later"
    )
    evidence = _recipient("421 Service refused, please try later", context, "4.0.0")
    verdict = judge_evidence("bounce", evidence)
    assert verdict.reason == "blocked", verdict.evidence
