"""ENVID and ORCPT (RFC 3461 §4): xtext that decodes to a control character is refused with
501 5.5.4 in the SMTP core (issue 12, finding 5). Before, ``ENVID=abc+0D+0AX-Injected:+20yes``
was accepted, and composing the report then raised on every retry, so the queue entry was never
retired; ESC and BEL reached stored reports verbatim."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.proto.test_smtp_server import codes_of, ready, replies
from todoku.proto.smtp.address import AddressError, decode_xtext, encode_xtext
from todoku.proto.smtp.events import MailFrom, RcptTo

CONTROL_ESCAPES = {
    "CR": "+0D",
    "LF": "+0A",
    "CRLF header injection": "+0D+0AX-Injected:+20yes",
    "NUL": "+00",
    "ESC": "+1B",
    "BEL": "+07",
    "TAB": "+09",
    "DEL": "+7F",
    "C1 NEL as UTF-8": "+C2+85",
    "LINE SEPARATOR as UTF-8": "+E2+80+A8",
}


@pytest.mark.parametrize("escape", CONTROL_ESCAPES.values(), ids=CONTROL_ESCAPES.keys())
def test_decode_xtext_refuses_control_characters(escape: str) -> None:
    with pytest.raises(AddressError, match="Control character"):
        decode_xtext(f"abc{escape}def")


def test_decode_xtext_still_decodes_printable_text() -> None:
    assert decode_xtext("QQ+2B314") == "QQ+314"
    assert decode_xtext("ENV+201") == "ENV 1"
    assert decode_xtext("rfc822+3Bbob+40example.test") == "rfc822;bob@example.test"
    assert decode_xtext("+E5+AE+8B") == "宋"  # RFC 6533: UTF-8 octets
    assert decode_xtext("caf+E9") == "café"  # not UTF-8: one character per octet


@pytest.mark.parametrize("escape", CONTROL_ESCAPES.values(), ids=CONTROL_ESCAPES.keys())
def test_envid_with_a_control_character_gets_501_5_5_4(escape: str) -> None:
    driver = ready()
    out = driver.feed(f"MAIL FROM:<a@example.test> ENVID=abc{escape}\r\n".encode())
    assert codes_of(out) == ["501 5.5.4"]
    assert "ENVID" in replies(out)[0]
    assert driver.of(MailFrom) == []
    # The session goes on: a clean ENVID is taken next.
    assert codes_of(driver.feed(b"MAIL FROM:<a@example.test> ENVID=abc\r\n")) == ["250 2.1.0"]


@pytest.mark.parametrize("escape", CONTROL_ESCAPES.values(), ids=CONTROL_ESCAPES.keys())
def test_orcpt_with_a_control_character_gets_501_5_5_4(escape: str) -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    command = f"RCPT TO:<b@example.test> ORCPT=rfc822;b{escape}+40example.test\r\n"
    out = driver.feed(command.encode())
    assert codes_of(out) == ["501 5.5.4"]
    assert "ORCPT" in replies(out)[0]
    assert driver.of(RcptTo) == []


def test_normal_xtext_is_still_accepted() -> None:
    driver = ready()
    out = driver.feed(
        b"MAIL FROM:<a@example.test> ENVID=QQ+2B314+20x\r\n"
        b"RCPT TO:<b@example.test> NOTIFY=SUCCESS ORCPT=rfc822;B+40example.test\r\n"
        b"RCPT TO:<c@example.test> ORCPT=utf-8;+E5+AE+8B+40example.test\r\n"
    )
    assert codes_of(out) == ["250 2.1.0", "250 2.1.5", "250 2.1.5"]
    assert driver.of(MailFrom)[0].envid == "QQ+314 x"
    assert [r.orcpt for r in driver.of(RcptTo)] == [
        "rfc822;B@example.test",
        "utf-8;宋@example.test",
    ]


# ------------------------------------------------------------------ fuzz (short in CI)


def is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or char in "\u2028\u2029"


_XTEXT_ISH = st.text(
    alphabet=st.sampled_from("abcXYZ019+-.@;!~0123456789ABCDEFabcdef"), max_size=40
)


@given(_XTEXT_ISH)
def test_decode_xtext_never_yields_a_control_character(text: str) -> None:
    try:
        decoded = decode_xtext(text)
    except AddressError:
        return
    assert not any(map(is_control, decoded))
    assert decode_xtext(encode_xtext(decoded)) == decoded


@given(st.binary(max_size=12))
def test_any_escaped_octets_are_refused_or_printable(octets: bytes) -> None:
    text = "".join(f"+{b:02X}" for b in octets)
    try:
        decoded = decode_xtext(text)
    except AddressError:
        assert any(b < 0x20 or b == 0x7F for b in octets) or not octets.isascii()
        return
    assert not any(map(is_control, decoded))
