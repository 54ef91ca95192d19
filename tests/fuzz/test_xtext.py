"""Fuzz xtext (RFC 3461 §4), the encoding of ENVID and ORCPT, and its path through the SMTP core.

RFC 3461 §4.2 and §4.4: what an ENVID or ORCPT decodes to is printable text; a decoded value
with CR, LF, NUL or any other control character must be refused (issue 12, finding 5: CR/LF in
an ENVID jammed the queue, ESC and BEL reached stored reports). So:

* ``decode_xtext`` returns text without control characters, or raises ``AddressError``;
* ``encode_xtext`` writes only xtext (xchar and ``+HH``), and ``decode_xtext(encode_xtext(s))``
  gives back any ``s`` without control characters, and refuses one that has them;
* an ENVID or ORCPT that the SMTP core accepts reaches the driver without control characters.
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings
from tests.fuzz.test_smtp_server import run
from todoku.proto.smtp.address import AddressError, decode_xtext, encode_xtext
from todoku.proto.smtp.events import MailFrom, RcptTo

# RFC 3461 §4: xchar is "!" to "~" except "+" and "="; hexchar is "+" and two upper-case digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")


def is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"  # C0, DEL and C1


def is_separator(char: str) -> bool:
    return unicodedata.category(char) in ("Zl", "Zp")  # U+2028, U+2029: line breaks too


HEX = st.sampled_from(
    [
        "+0D",
        "+0A",
        "+00",
        "+1B",
        "+07",
        "+7F",
        "+85",
        "+C2+85",
        "+E2+80+A8",
        "+C3+A9",
        "+FF",
        "+2B",
        "+3D",
        "+20",
        "+",
        "+0",
        "+g0",
        "+0d",
    ]
)
XTEXT_LIKE = st.lists(
    st.one_of(
        HEX, st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2030), max_size=4)
    ),
    max_size=12,
).map("".join)


@fuzz_settings(4)
@given(text=XTEXT_LIKE)
@example(text="abc+0D+0AX-Injected:+20yes")  # the ENVID of issue 12, finding 5
@example(text="+1B[31m")  # ESC
@example(text="+85")  # NEL (C1), when the octets are not UTF-8 and are read as Latin-1
def test_decoded_xtext_never_holds_a_control_character(text: str) -> None:
    try:
        decoded = decode_xtext(text)
    except AddressError:
        return
    assert not any(is_control(c) for c in decoded), repr(decoded)


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@fuzz_settings(4)
@given(text=TEXT)
def test_encoding_is_xtext_and_decoding_gives_it_back(text: str) -> None:
    encoded = encode_xtext(text)
    assert _XTEXT.fullmatch(encoded), encoded
    if any(is_control(c) for c in text):
        try:
            decode_xtext(encoded)
        except AddressError:
            return
        raise AssertionError(f"a control character was accepted: {text!r}")
    if not any(is_separator(c) for c in text):  # refusing these too is the decoder's choice
        assert decode_xtext(encoded) == text


@fuzz_settings()
@given(envid=XTEXT_LIKE, orcpt=XTEXT_LIKE)
@example(envid="abc+0D+0AX-Injected:+20yes", orcpt="bob+0D+0A@example.test")
def test_the_smtp_core_passes_on_no_control_character(envid: str, orcpt: str) -> None:
    wire = (
        f"EHLO c\r\nMAIL FROM:<a@example.test> ENVID={envid}\r\n"
        f"RCPT TO:<b@example.test> ORCPT=rfc822;{orcpt}\r\n"
    ).encode("utf-8", "surrogateescape")
    session = run([wire])
    for event in session.events:
        if isinstance(event, MailFrom) and event.envid is not None:
            assert not any(is_control(c) for c in event.envid), repr(event.envid)
        if isinstance(event, RcptTo) and event.orcpt is not None:
            assert not any(is_control(c) for c in event.orcpt), repr(event.orcpt)
