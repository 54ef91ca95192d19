"""The text output says what happens to the message from the report's Action (issue 13 item 3):
a returned message is never "still being retried", whatever its status class."""

from __future__ import annotations

import pytest

from todoku.bounce.analyze import analyze_bytes
from todoku.bounce.render import as_text

DSN = """\
From: MAILER-DAEMON@mx.example.test
To: alice@example.test
Subject: Undelivered Mail
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; bob@remote.test
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {code} {status} {text}

--b--
"""


def render(action: str, status: str, code: int, text: str, lang: str = "en") -> str:
    data = DSN.format(action=action, status=status, code=code, text=text).encode()
    (diagnosis,) = analyze_bytes(data, lang, True)
    return as_text("x.eml", diagnosis, lang)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_returned_message_with_a_4xx_status_is_not_being_retried(lang: str) -> None:
    out = render("failed", "4.4.7", 451, "Message expired", lang)
    assert "still being retried" not in out and "再送中" not in out and "再送を続けて" not in out
    assert ("returned" in out) if lang == "en" else ("返送済み" in out)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_delayed_message_is_still_being_retried(lang: str) -> None:
    out = render("delayed", "4.2.2", 452, "Mailbox full", lang)
    assert ("still being retried" in out) if lang == "en" else ("再送を続けて" in out)


def test_a_hard_failure_says_sending_again_fails_the_same_way() -> None:
    out = render("failed", "5.1.1", 550, "User unknown")
    assert "would fail the same way" in out


def test_an_address_literal_recipient_is_named() -> None:
    """todoku's own report for bob@[192.0.2.9] (queue bounce of an address-literal recipient)
    names that recipient; the closing bracket belongs to the address (RFC 5321 §4.1.3)."""
    data = DSN.replace("bob@remote.test", "bob@[192.0.2.9]").format(
        action="failed", status="5.1.1", code=550, text="User unknown"
    )
    (diagnosis,) = analyze_bytes(data.encode(), "en", True)
    assert diagnosis.recipient == "bob@[192.0.2.9]"


def test_terminal_controls_from_the_bounce_are_shown_escaped() -> None:
    """A hostile bounce cannot drive the reader's terminal: escape sequences, an OSC 8 link, a C1
    CSI and a right-to-left override in the remote's words are printed as escapes."""
    hostile = "User unknown \x1b]8;;http://evil\x07click\x1b]8;;\x07 \x1b[2J\x9b31m \u202eevil"
    out = render("failed", "5.1.1", 550, hostile)
    assert "server said" in out
    assert not any(ch in out for ch in "\x1b\x07\x9b\u202e")
    assert "\\x1b]8;;http://evil\\x07click" in out
    assert all(line.isprintable() for line in out.splitlines())
