"""One small hand-made bounce or reply per reason: the analyzer must name the right reason,
recipient and codes, and explain it in both languages."""

from __future__ import annotations

import pytest

from tests.bounce.helpers import exim_text, japanese_carrier, postfix_dsn, qmail_text
from todoku.bounce import REASONS, classify_reply, explain_reason
from todoku.bounce.analyze import analyze_bytes
from todoku.bounce.typos import suggest_domain

# (code, enhanced, text as real servers write it) → reason
REPLIES = [
    (
        550,
        "5.1.1",
        ("<nobody@example.org>: Recipient address rejected: User unknown in local recipient table"),
        "userunknown",
    ),
    (550, "5.1.1", "The email account that you tried to reach does not exist.", "userunknown"),
    (550, None, "Unrouteable address", "hostunknown"),
    (
        550,
        "5.4.4",
        (
            "Host or domain name not found. Name service error for name=exmaple.org "
            "type=A: Host not found"
        ),
        "hostunknown",
    ),
    (552, "5.2.2", "<a@example.org>: Recipient address rejected: Mailbox full", "mailboxfull"),
    (452, "4.2.2", "The email account that you tried to reach is over quota.", "mailboxfull"),
    (552, "5.3.4", "Message size exceeds fixed limit", "mesgtoobig"),
    (554, "5.7.1", "<a@example.org>: Relay access denied", "norelaying"),
    (
        553,
        "5.7.1",
        "<me@other.example>: Sender address rejected: not owned by user me@example.net",
        "rejected",
    ),
    (
        554,
        "5.7.1",
        "Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org",
        "blocked",
    ),
    (
        550,
        "5.7.26",
        (
            "This mail has been blocked because the sender is unauthenticated. "
            "Gmail requires all senders to authenticate with either SPF or DKIM."
        ),
        "authfailure",
    ),
    (550, "5.7.1", "SPF check failed: 192.0.2.9 is not a designated sender", "authfailure"),
    (
        550,
        "5.7.25",
        "The IP address sending this message does not have a PTR record setup",
        "requireptr",
    ),
    (
        421,
        "4.7.0",
        "Too many concurrent SMTP connections from this IP address; try again later",
        "toomanyconn",
    ),
    (550, "5.7.1", "Message rejected as spam by Content Filtering.", "spamdetected"),
    (554, "5.7.1", "The message was rejected because it contains a virus", "virusdetected"),
    (550, "5.2.1", "The email account that you tried to reach is disabled.", "suspend"),
    (551, "5.1.6", "User has moved; please try <new@example.org>", "hasmoved"),
    (530, "5.7.0", "Authentication required", "securityerror"),
    (554, "5.4.6", "mail for example.org loops back to myself", "networkerror"),
    (556, "5.1.10", "Recipient address has null MX", "notaccept"),
    (
        550,
        "5.7.1",
        "This message is not RFC 5322 compliant. There are multiple Subject headers.",
        "notcompliantrfc",
    ),
    (452, "4.3.1", "Insufficient system storage", "systemfull"),
    (500, "5.5.2", "Error: command not recognized", "syntaxerror"),
    (550, "5.7.1", "Message rejected due to local policy", "policyviolation"),
    (451, "4.4.7", "Message expired", "expired"),
    (550, "5.2.0", "Mail rejete. Mail rejected. ofr_506 [506]", "spamdetected"),
    (554, "5.7.1", "Delivery not authorized, message refused", "securityerror"),
    (
        None,
        "4.0.0",
        "DNS Error: DNS type 'mx' lookup of example.org responded with code NOERROR",
        "notaccept",
    ),
    (
        None,
        "4.0.0",
        (
            "DNS Error: DNS type 'a' lookup of gmal.com responded with code NOERROR "
            "DNS type 'mx' lookup of gmal.com responded with code NOERROR"
        ),
        "networkerror",
    ),
]


@pytest.mark.parametrize(("code", "enhanced", "text", "reason"), REPLIES)
def test_classify_reply(code: int | None, enhanced: str | None, text: str, reason: str) -> None:
    assert classify_reply(code, enhanced, text) == reason


def test_classify_reply_falls_back_to_the_codes() -> None:
    assert classify_reply(550, "5.1.1", "") == "userunknown"
    assert classify_reply(552, "5.2.2", "nope") == "mailboxfull"
    assert classify_reply(None, "5.7.26", "") == "authfailure"
    assert classify_reply(None, None, "") == "undefined"


def test_every_reason_explains_in_both_languages() -> None:
    for word, reason in REASONS.items():
        for lang in ("en", "ja"):
            cause, remedy = explain_reason(word, lang)
            assert cause and remedy, (word, lang)
            assert "{" not in cause + remedy, (word, lang)
        assert reason.en.cause != reason.ja.cause
    en = explain_reason("userunknown", "en")[0]
    ja = explain_reason("userunknown", "ja")[0]
    assert "@" in en and "@" in ja and en != ja


def test_explanations_use_the_facts() -> None:
    cause, remedy = explain_reason("hostunknown", "en", recipient="taro@gmial.com")
    assert "gmial.com" in cause and "gmail.com" in remedy
    cause, remedy = explain_reason("hostunknown", "ja", recipient="taro@yaho.co.jp")
    assert "yahoo.co.jp" in remedy and "もしかして" in remedy
    cause, _ = explain_reason("userunknown", "en", recipient="tarou@example.org")
    assert "tarou" in cause and "example.org" in cause
    _, remedy = explain_reason("norelaying", "en")
    assert "587" in remedy and "authentication" in remedy
    cause, remedy = explain_reason("delayed", "en", elapsed="4 hours", lifetime="5 days")
    assert "4 hours" in cause and "5 days" in remedy
    cause, _ = explain_reason("expired", "ja", lifetime="5日")
    assert "5日" in cause
    # A fact the text needs but the caller lacks drops the sentence instead of leaving a hole.
    cause, remedy = explain_reason("hostunknown", "en")
    assert "Did you mean" not in remedy and "{" not in cause
    assert explain_reason("no-such-reason", "en") == explain_reason("undefined", "en")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("gmial.com", "gmail.com"),
        ("gmail.co", "gmail.com"),
        ("yaho.co.jp", "yahoo.co.jp"),
        ("yahoo.co.pj", "yahoo.co.jp"),
        ("docomo.ne.pj", "docomo.ne.jp"),
        ("docomo.co.jp", "docomo.ne.jp"),
        ("ezwed.ne.jp", "ezweb.ne.jp"),
        ("outlok.jp", "outlook.jp"),
        ("hotmial.com", "hotmail.com"),
    ],
)
def test_domain_typo_suggestions(typo: str, meant: str) -> None:
    assert suggest_domain(typo) == meant


def test_no_suggestion_for_correct_or_unrelated_domains() -> None:
    assert suggest_domain("gmail.com") is None
    assert suggest_domain("example.org") is None
    assert suggest_domain("university.ac.jp") is None


BOUNCES = [
    (
        postfix_dsn(
            "nobody@example.org",
            "5.1.1",
            "550 5.1.1 <nobody@example.org>: Recipient "
            "address rejected: User unknown in local recipient table",
        ),
        "nobody@example.org",
        "userunknown",
        "5.1.1",
        550,
        True,
    ),
    (
        postfix_dsn("full@example.org", "4.2.2", "452 4.2.2 Mailbox full", action="delayed"),
        "full@example.org",
        "mailboxfull",
        "4.2.2",
        452,
        False,
    ),
    (
        postfix_dsn("a@example.org", "5.7.1", "554 5.7.1 <a@example.org>: Relay access denied"),
        "a@example.org",
        "norelaying",
        "5.7.1",
        554,
        True,
    ),
    (
        postfix_dsn(
            "a@example.org",
            "5.0.0",
            "550 5.7.26 Unauthenticated email from example.net is "
            "not accepted due to domain's DMARC policy",
            command="end of DATA",
        ),
        "a@example.org",
        "authfailure",
        "5.7.26",
        550,
        True,
    ),
    (
        postfix_dsn("a@example.org", "2.0.0", "250 2.0.0 Ok: queued as 12345", action="delivered"),
        "a@example.org",
        "delivered",
        "2.0.0",
        250,
        False,
    ),
    (
        exim_text("who@example.org", "550 5.1.1 <who@example.org>: No such user here"),
        "who@example.org",
        "userunknown",
        "5.1.1",
        550,
        True,
    ),
    (
        exim_text(
            "big@example.org",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            after="end of data",
        ),
        "big@example.org",
        "mesgtoobig",
        "5.3.4",
        552,
        True,
    ),
    (
        exim_text(
            "me@example.org",
            "553 5.7.1 <me@example.net>: Sender address rejected: not owned by user me@example.net",
            after="MAIL FROM:<me@example.net>",
        ),
        "me@example.org",
        "rejected",
        "5.7.1",
        553,
        True,
    ),
    (
        qmail_text("gone@example.org", "Sorry, no mailbox here by that name. (#5.1.1)"),
        "gone@example.org",
        "userunknown",
        "5.1.1",
        None,
        True,
    ),
    (
        qmail_text(
            "x@no-such-domain.example",
            "Sorry, I couldn't find any host named no-such-domain.example. (#5.1.2)",
        ),
        "x@no-such-domain.example",
        "hostunknown",
        "5.1.2",
        None,
        True,
    ),
    (
        qmail_text(
            "slow@example.org",
            "Sorry, I wasn't able to establish an SMTP connection. "
            "(#4.4.1)\nI'm not going to try again; this message has been in the queue too long.",
        ),
        "slow@example.org",
        "expired",
        "4.4.1",
        None,
        True,  # returned: "I'm not going to try again" (issue 13 item 3)
    ),
]


@pytest.mark.parametrize(("data", "recipient", "reason", "status", "code", "permanent"), BOUNCES)
def test_hand_made_bounces(
    data: bytes, recipient: str, reason: str, status: str, code: int | None, permanent: bool
) -> None:
    [diagnosis] = analyze_bytes(data, explain=True)
    assert diagnosis.recipient == recipient
    assert diagnosis.reason == reason
    assert diagnosis.status == status
    assert diagnosis.reply_code == code
    assert diagnosis.permanent is permanent
    assert diagnosis.cause and diagnosis.remedy


def test_japanese_carrier_notice() -> None:
    data = japanese_carrier(
        "taro@docomo.ne.jp", "宛先のメールボックスが一杯のため送信できませんでした。mailbox is full"
    )
    [diagnosis] = analyze_bytes(data)
    assert diagnosis.recipient == "taro@docomo.ne.jp"
    assert diagnosis.reason == "mailboxfull"


def test_not_a_bounce_and_garbage_never_raise() -> None:
    plain = b"From: friend@example.org\nTo: me@example.net\nSubject: lunch?\n\nNoon?\n"
    [diagnosis] = analyze_bytes(plain)
    assert diagnosis.reason == "notbounce"
    for junk in (
        b"",
        b"\x00\xff\xfe" * 100,
        b"Content-Type: multipart/report; boundary=\n\n--",
        b"Subject: =?utf-8?B?////?=\n\n",
        b"From: \n" * 1000,
    ):
        results = analyze_bytes(junk)
        assert results and all(r.reason for r in results)


def test_out_of_office_is_vacation() -> None:
    data = (
        b"From: Taro <taro@example.org>\nTo: me@example.net\nSubject: Out of Office: hello\n"
        b"Auto-Submitted: auto-replied\n\nI am away until Monday.\n"
    )
    [diagnosis] = analyze_bytes(data)
    assert diagnosis.reason == "vacation"
    assert diagnosis.recipient == "taro@example.org"


def _gateway_dsn(diagnostic: str, status: str = "5.0.0", extra_header: str = "") -> bytes:
    """A DSN that names no SMTP command, as filtering gateways and many MTAs write them."""
    return f"""From: MAILER-DAEMON@gw.example.net
To: sender@example.net
Subject: Delivery Status Notification (Failure)
{extra_header}MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="unique-boundary-9f8e7d6c5b4a"

--unique-boundary-9f8e7d6c5b4a
Content-Type: text/plain

Your message could not be delivered to one or more recipients.

--unique-boundary-9f8e7d6c5b4a
Content-Type: message/delivery-status

Reporting-MTA: dns; gw.example.net

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--unique-boundary-9f8e7d6c5b4a--
""".encode()


@pytest.mark.parametrize(
    ("diagnostic", "status", "extra_header", "reason"),
    [
        # A plain refusal of the address: the mailbox does not exist.
        ("550 <nobody@example.org>: User unknown", "5.0.0", "", "userunknown"),
        ("550 Unknown user nobody@example.org", "5.1.1", "", "userunknown"),
        # The reply quotes no address: it answered the content, not RCPT TO.
        ("550 : User unknown", "5.0.0", "", "filtered"),
        # The code names a policy (X.7.x) or mailbox-status (X.2.x) problem, not an address one.
        ("550 5.7.1 550 User Unknown: nobody@example.org", "5.7.1", "", "filtered"),
        ("550 5.2.1 <nobody@example.org>... User Unknown", "5.2.1", "", "filtered"),
        # A filtering gateway passes on its inner server's refusal after accepting the recipient ...
        (
            "550 Unknown user nobody@example.org",
            "5.0.0",
            "X-NAI-Header: Modified by McAfee Email and Web Security Appliance\n",
            "filtered",
        ),
        (
            "550 nobody@example.org... No such user",
            "5.0.0",
            "X-Mailer: SurfControl E-mail Filter\n",
            "filtered",
        ),
        # ... unless that refusal carries an address status (X.1.x).
        (
            "550 5.1.1 Unknown user nobody@example.org",
            "5.1.1",
            "X-NAI-Header: Modified by McAfee Email and Web Security Appliance\n",
            "userunknown",
        ),
    ],
)
def test_user_unknown_after_acceptance_is_filtered(
    diagnostic: str, status: str, extra_header: str, reason: str
) -> None:
    [diagnosis] = analyze_bytes(_gateway_dsn(diagnostic, status, extra_header))
    assert diagnosis.recipient == "nobody@example.org"
    assert diagnosis.reason == reason
