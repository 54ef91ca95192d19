"""`todoku explain` on hostile files (issue 12, finding 9): charsets that are no charset, and
inputs shaped to make a pattern rescan the text from every position.

A file like that must be read like any other: the analysis is not lost, nothing raises, the
files after it are still explained, and the time taken grows with the size of the file, not
with its square. The time tests double the input and only check that both sizes finish: the
wall-clock limit is a generous guard against hanging (a quadratic pattern took ten minutes on
a 1 MB line), not a measure of speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.bounce.helpers import postfix_dsn
from todoku.bounce.analyze import analyze_bytes
from todoku.bounce.extract import ADDRESS, parse_bounce
from todoku.bounce.mime import codec_for, decode_text, decode_words

GUARD_SECONDS = 30.0
T = TypeVar("T")


def within_guard(function: Callable[..., T], *args: object) -> list[T]:
    """Run ``function(*args)`` in a thread: ``[its result]`` if it returned within the guard,
    ``[]`` if it is still running (or raised)."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(function(*args)), daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    return result


def text_bounce(
    body: bytes,
    *,
    subject: bytes = b"Undelivered Mail Returned to Sender",
    content_type: bytes = b"text/plain; charset=us-ascii",
) -> bytes:
    return (
        b"From: MAILER-DAEMON@mail.example.net\nTo: sender@example.net\n"
        b"Subject: " + subject + b"\nContent-Type: " + content_type + b"\n\n" + body
    )


USER_UNKNOWN = b"<bob@example.org>: host mx.example.org said: 550 5.1.1 User unknown\n"


# -- charsets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject", [b"=?undefined?q?x?=", b"=?idna?q?=FF?=", b"=?rot13?q?abc?=", b"=?zlib?b?eJwLAQ==?="]
)
def test_encoded_word_in_a_codec_that_is_no_charset(subject: bytes) -> None:
    [diagnosis] = analyze_bytes(text_bounce(USER_UNKNOWN, subject=subject))
    assert (diagnosis.recipient, diagnosis.reason) == ("bob@example.org", "userunknown")


@pytest.mark.parametrize(
    "charset", [b'"a\0b"', b"undefined", b"idna", b"rot13", b"zlib", b"unicode_escape", b"x" * 5000]
)
def test_body_in_a_charset_that_is_no_charset(charset: bytes) -> None:
    data = text_bounce(USER_UNKNOWN, content_type=b"text/plain; charset=" + charset)
    [diagnosis] = analyze_bytes(data)
    assert (diagnosis.recipient, diagnosis.reason) == ("bob@example.org", "userunknown")


def test_text_charsets_still_decode_and_others_fall_back_to_utf8() -> None:
    assert decode_text("宛先".encode("iso2022_jp"), "ISO-2022-JP") == "宛先"
    assert decode_text("Grüße".encode("latin-1"), "latin1") == "Grüße"
    assert decode_text("Grüße".encode("cp1252"), "windows-1252") == "Grüße"
    assert decode_text(b"caf\xc3\xa9 \xff", "undefined") == "café \ufffd"
    assert decode_text(b"\\u0041", "unicode_escape") == "\\u0041"  # not read as an escape
    assert [
        codec_for(label) for label in ("idna", "punycode", "zlib", "a\0b", "raw_unicode_escape")
    ] == ["utf-8"] * 5
    assert decode_words("=?idna?q?=FF?= =?utf-8?q?ok?=") == "\ufffdok"


def test_a_hostile_file_does_not_stop_the_run(tmp_path: Path) -> None:
    files = []
    for index, charset in enumerate((b'"a\0b"', b"undefined")):
        hostile = tmp_path / f"{index}-hostile.eml"
        hostile.write_bytes(
            text_bounce(
                USER_UNKNOWN,
                subject=b"=?idna?q?=FF?=",
                content_type=b"text/plain; charset=" + charset,
            )
        )
        files.append(str(hostile))
    after = tmp_path / "2-after.eml"
    after.write_bytes(postfix_dsn("carol@example.org", "5.2.2", "552 5.2.2 Mailbox full"))
    files.append(str(after))
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "explain", "--json", *files],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.count('"bob@example.org"') == 2 and '"carol@example.org"' in out


# -- time that grows with the input, not with its square ---------------------------------------


def test_address_pattern_on_long_runs_without_an_at_sign() -> None:
    for size in (1 << 20, 2 << 20):
        for line in ("a" * size, "a." * (size // 2), "a-" * (size // 2) + "@"):
            assert within_guard(ADDRESS.search, line), (size, line[:4])
    # Bounded, it still finds what a report writes.
    found = ADDRESS.findall("x " * 1000 + "<Bob.Smith+tag@mail.example.org>: 550 unknown")
    assert found == ["Bob.Smith+tag@mail.example.org"]


HOSTILE_LINES = {
    "letters": b"a",  # the recipient-address pattern, before: ten minutes for 1 MB
    "dotted": b"a.",
    "blank lines": b"\n",  # a reply-line pattern whose leading \s spanned the blank lines
    "unclosed tags": b"<",
    "unclosed styles": b"<style ",
    "many addresses": b"a@b.example ",
    "display names": b"<a@b.example> ",
    "reply codes": b"550 ",
    "status codes": b"5.1.1.",
}


@pytest.mark.parametrize("unit", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
@pytest.mark.parametrize("shape", ["text", "html", "dsn"])
def test_one_huge_line_is_read_in_linear_time(unit: bytes, shape: str) -> None:
    for size in (1 << 20, 2 << 20):
        filler = unit * (size // len(unit))
        if shape == "text":
            data = text_bounce(USER_UNKNOWN + filler + b"\n")
        elif shape == "html":
            data = text_bounce(
                b"<p>" + USER_UNKNOWN + filler + b"</p>\n", content_type=b"text/html; charset=utf-8"
            )
        else:
            data = postfix_dsn("bob@example.org", "5.1.1", "550 5.1.1 " + filler.decode("ascii"))
        assert within_guard(analyze_bytes, data, "en", True), (shape, size)


def test_many_unfolded_continuation_lines_in_a_dsn_field() -> None:
    # A Diagnostic-Code written over many lines without folding: each line used to be added to
    # the value by copying all of it.
    for lines in (100_000, 200_000):
        data = postfix_dsn("bob@example.org", "5.1.1", "550 5.1.1 unknown" + "\nx" * lines)
        bounce = within_guard(parse_bounce, data)
        assert bounce, lines
        assert bounce[0].evidence[0].recipient == "bob@example.org"


def test_many_encoded_words_in_a_subject() -> None:
    for words in (40_000, 80_000):
        subject = "=?utf-8?b?5a6b?= " * words
        result = within_guard(decode_words, subject)
        assert result, words
        assert result[0] == "宛" * words + " "
