"""action, hard and permanent: three facts kept apart (issue 13 item 3).

``action`` says what became of the message (RFC 3464 §2.3.3: failed, delayed, ...), ``permanent``
that nothing will retry it (``action == "failed"``), ``hard`` that sending it again would fail
the same way. A returned message is never "still being retried", whatever its status class.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bounce.helpers import exim_text, postfix_dsn, qmail_text
from todoku.bounce.analyze import analyze_bytes

CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces"))


def outcome(data: bytes) -> tuple[str, str, bool, bool]:
    [diagnosis] = analyze_bytes(data)
    return diagnosis.reason, diagnosis.action, diagnosis.permanent, diagnosis.hard


@pytest.mark.parametrize(
    ("status", "reply", "reason", "hard"),
    [
        (
            "5.1.1",
            "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
            "userunknown",
            True,
        ),
        ("5.2.2", "552 5.2.2 <bob@example.org>: Mailbox full", "mailboxfull", False),
        # A full mailbox answered with a temporary code, returned by the sender's server at last:
        # returned all the same.
        ("4.2.2", "452 4.2.2 <bob@example.org>: Mailbox full", "mailboxfull", False),
        ("4.7.0", "421 4.7.0 Too many connections from your IP, try later", "toomanyconn", False),
    ],
)
def test_a_returned_message_is_failed_and_permanent(
    status: str, reply: str, reason: str, hard: bool
) -> None:
    data = postfix_dsn("bob@example.org", status, reply)
    assert outcome(data) == (reason, "failed", True, hard)


def test_a_delay_warning_is_delayed_not_permanent_not_hard() -> None:
    data = postfix_dsn(
        "bob@example.org",
        "4.1.1",
        "450 4.1.1 <bob@example.org>: Recipient address rejected: User unknown",
        action="delayed",
    )
    _reason, action, permanent, hard = outcome(data)
    assert (action, permanent, hard) == ("delayed", False, False)


def test_reports_without_action_fields_are_read_from_their_words() -> None:
    returned = qmail_text("bob@example.org", "Sorry, the mailbox is full. (#4.2.2)")
    assert outcome(returned)[1:3] == ("failed", True)
    refused = exim_text("bob@example.org", "550 5.1.1 <bob@example.org>: User unknown")
    assert outcome(refused)[1:] == ("failed", True, True)
    warning = b"""From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: sender@example.net
Subject: Warning: message 1abcde-000001-AB delayed 24 hours

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mail.example.net.

  bob@example.org
    host mx.example.org [192.0.2.25]: 451 4.3.0 Temporary local problem

No action is required on your part. Delivery attempts will continue for some time.
"""
    assert outcome(warning)[1:] == ("delayed", False, False)


def test_reports_about_delivered_mail_are_not_failures() -> None:
    data = postfix_dsn("bob@example.org", "2.0.0", "250 2.0.0 Ok: queued", action="delivered")
    assert outcome(data) == ("delivered", "delivered", False, False)
    auto_reply = (
        b"From: bob@example.org\nTo: sender@example.net\nSubject: Out of office\n"
        b"Auto-Submitted: auto-replied\n\nI am away until Monday.\n"
    )
    assert outcome(auto_reply)[1:] == ("delivered", False, False)
    plain = b"From: a@example.org\nTo: b@example.org\nSubject: hi\n\nhello\n"
    assert outcome(plain) == ("notbounce", "", False, False)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("lhost-postfix-45.eml", "mailboxfull"),  # Action: failed, Status: 4.3.0
        ("lhost-kddi-01.eml", "mailboxfull"),  # a carrier's text notice
        ("lhost-notes-01.eml", "onhold"),
        ("rfc3464-43.eml", "onhold"),  # Action: failed, Status: 4.3.0
    ],
)
def test_corpus_final_bounces_are_permanent(name: str, reason: str) -> None:
    path = CORPUS / "maildir" / "bsd" / name
    if not path.exists():
        pytest.skip("the bounce corpus is not on this machine")
    assert outcome(path.read_bytes()) == (reason, "failed", True, False)


def test_corpus_delay_warning_is_not_permanent() -> None:
    path = CORPUS / "maildir" / "bsd" / "rfc3464-09.eml"  # Action: delayed, mailbox full
    if not path.exists():
        pytest.skip("the bounce corpus is not on this machine")
    assert outcome(path.read_bytes())[1:] == ("delayed", False, False)


def test_json_carries_action_hard_and_evidence() -> None:
    [diagnosis] = analyze_bytes(postfix_dsn("bob@example.org", "5.1.1", "550 5.1.1 unknown"))
    fields = diagnosis.to_json("x.eml")
    assert (fields["action"], fields["permanent"], fields["hard"]) == ("failed", True, True)
    assert fields["evidence"]
