"""Recipients come only from what the report names as failed (issue 13 item 4).

The DSN's Final-Recipient / Original-Recipient fields and the failure lines of the report's
text name them; the returned original message, the report's quotes of its header fields, its
signature and the addresses it gives for help do not. An address is reported without the
address type, quotes, angle brackets and punctuation written around it.
"""

from __future__ import annotations

import pytest

from tests.bounce.helpers import postfix_dsn, qmail_text
from todoku.bounce.analyze import analyze_bytes


def recipients(data: bytes) -> list[str]:
    return [diagnosis.recipient for diagnosis in analyze_bytes(data)]


def dsn_with_field(final_recipient: str) -> bytes:
    """A DSN whose Final-Recipient field is written ``final_recipient`` (after "rfc822;")."""
    data = postfix_dsn("placeholder@example.org", "5.1.1", "550 5.1.1 User unknown")
    return (
        data.replace(
            b"Final-Recipient: rfc822; placeholder@example.org",
            b"Final-Recipient: rfc822; " + final_recipient.encode(),
        )
        .replace(b"Original-Recipient: rfc822;placeholder@example.org\r\n", b"")
        .replace(b"<placeholder@example.org>: ", b"")
        .replace(b"To: placeholder@example.org", b"To: someone@example.org")
    )


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ("smtp=bob@example.org", "bob@example.org"),
        ('"bob@example.org"', "bob@example.org"),
        ("'bob@example.org'", "bob@example.org"),
        ("<Bob@Example.org>.", "bob@example.org"),
        ("bob@mailhub", "bob@mailhub"),  # a host name without a dot, as a local delivery writes it
        ('"bob..smith"@example.org', '"bob..smith"@example.org'),  # a quoted local part stays
    ],
)
def test_final_recipient_as_written(written: str, address: str) -> None:
    assert recipients(dsn_with_field(written)) == [address]


@pytest.mark.parametrize(
    ("line", "address"),
    [
        ("smtp=bob@example.org", "bob@example.org"),
        ("'bob@example.org'", "bob@example.org"),
    ],
)
def test_text_report_heading_as_written(line: str, address: str) -> None:
    data = qmail_text("placeholder@example.org", "Sorry, no mailbox here by that name. (#5.1.1)")
    data = data.replace(b"<placeholder@example.org>:", line.encode() + b":").replace(
        b"To: placeholder@example.org", b"To: someone@example.org"
    )
    assert recipients(data) == [address]


def test_an_address_only_in_the_returned_message_is_not_a_recipient() -> None:
    data = b"""From: Mail Delivery Subsystem <MAILER-DAEMON@mail.example.net>
To: sender@example.net
Subject: Returned mail: Cannot send message for 4 days

   ----- Transcript of session follows -----
421 example.org (smtp)... Deferred: Connection timed out during user open with example.org

   ----- Unsent message follows -----
From: sender@example.net
To: taro@example.org, hanako@example.org
Subject: hello

hi
"""
    assert recipients(data) == [""]


def test_header_fields_quoted_in_the_report_name_no_recipient() -> None:
    """An Exchange-style report quotes the original's To: (all its recipients) before naming
    the one that failed; a forwarded report quotes Message-Id and Received lines."""
    data = b"""From: System Administrator <postmaster@example.net>
To: sender@example.net
Subject: Undeliverable: plans
Content-Type: text/plain; charset=us-ascii

Your message

  To:      alice@example.org; bob@example.org
  Subject: plans
  Sent:    Thu, 29 Apr 2010 00:00:00 -0000

did not reach the following recipient(s):

bob@example.org on Thu, 29 Apr 2010 00:00:00 -0000
    The recipient name is not recognized

> Message-Id: <20100429.1234@mail.example.net>
> Received: from mail.example.net by mx.example.org for <carol@example.org>;
"""
    assert recipients(data) == ["bob@example.org"]


def test_signature_and_help_addresses_are_not_recipients() -> None:
    data = b"""From: MAILER-DAEMON@lists.example.org
To: sender@example.net
Subject: Returned mail: not delivered

Your message to <members@lists.example.org> could not be delivered:
you are not a member of this mailing list.

To join, please send mail with the body

\tsubscribe

to the address

\tmembers-ctl@lists.example.org

-- 
The list robot
list-owner@lists.example.org
"""
    found = set(recipients(data))
    assert "members-ctl@lists.example.org" not in found
    assert "list-owner@lists.example.org" not in found
    assert found == {"members@lists.example.org"}


def test_display_name_that_looks_like_an_address() -> None:
    """Exim's "malformed address: <b> may not follow a": the address is the bracketed one."""
    data = b"""From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: sender@example.net
Subject: Mail failure - malformed recipient address

A message that you sent contained one or more recipient addresses that were
incorrectly constructed:

  alice@example.com <bob@example.org>: malformed address: <bob@example.org> may not follow alice@example.com

This address has been ignored.
"""
    assert recipients(data) == ["bob@example.org"]


def test_a_bounce_of_a_bounce_names_its_own_recipient() -> None:
    """A postmaster notice returning a bounce that could not be delivered: the inner report's
    recipient is the first bounce's business, not this one's."""
    inner = postfix_dsn("first@example.org", "5.3.5", "553 5.3.5 system config error")
    outer = postfix_dsn("sender@example.net", "5.1.1", "550 5.1.1 User unknown")
    head, _, _ = outer.rpartition(b"--B0UND\r\nContent-Type: message/rfc822\r\n\r\n")
    data = head.replace(b"B0UND", b"OUTER") + (
        b"--OUTER\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--OUTER--\r\n"
    )
    assert recipients(data) == ["sender@example.net"]


def test_a_forwarded_bounce_still_names_the_inner_recipient() -> None:
    inner = postfix_dsn("first@example.org", "5.1.1", "550 5.1.1 User unknown")
    data = (
        b"From: alice@example.net\r\nTo: helpdesk@example.net\r\nSubject: Fwd: bounce\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=FWD\r\n\r\n"
        b"--FWD\r\nContent-Type: text/plain\r\n\r\nWhat does this mean?\r\n"
        b"--FWD\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--FWD--\r\n"
    )
    assert recipients(data) == ["first@example.org"]
