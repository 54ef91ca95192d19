"""The header facts of the accept path (ingest.scan_headers) on hostile Subjects: never an
exception, never a control character (issue 12)."""

from __future__ import annotations

import pytest

from todoku.ingest import SUBJECT_LIMIT, scan_headers


@pytest.mark.parametrize(
    "subject",
    [
        b"=?utf-8?b?a?=",  # bad base64: binascii.Error, raised as HeaderParseError
        b"x =?utf-8?b?abcde?= y",
        b"=?undefined?q?x?=",  # unknown charset: LookupError
    ],
)
def test_a_bad_encoded_word_is_shown_as_sent(subject: bytes) -> None:
    facts = scan_headers(b"Subject: " + subject + b"\r\nFrom: a@example.test\r\n\r\n")
    assert facts.subject == subject.decode()
    assert facts.has_from


def test_control_characters_from_encoded_words_never_reach_the_subject() -> None:
    # ESC, BEL and CR LF decoded from an encoded word would reach `todoku mailbox list`.
    block = b"Subject: =?utf-8?q?Hi=0D=0AX-Forged:_1=1B[2J=07=C2=85?= end\r\n\r\n"
    subject = scan_headers(block).subject
    assert subject.startswith("Hi  X-Forged: 1 [2J")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject), repr(subject)


def test_control_characters_in_an_undecodable_subject_are_replaced_too() -> None:
    subject = scan_headers(b"Subject: =?utf-8?b?a?= \x1b]0;title\x07\r\n\r\n").subject
    assert "\x1b" not in subject and "\x07" not in subject and "]0;title" in subject


def test_a_huge_subject_gives_a_bounded_one() -> None:
    # Issue 12: the standard library's decoder is slow on many encoded words; it only ever
    # sees the start of the field, which is still enough for SUBJECT_LIMIT characters.
    block = b"Subject: " + b"=?utf-8?q?=E5=AE=9B?=\r\n " * 20_000 + b"x\r\n\r\n"
    subject = scan_headers(block).subject
    assert subject == "\u5b9b" * SUBJECT_LIMIT
