"""Reports about hostile messages (issue 12, findings 1 and 5).

A report copies a bounded, linearly decoded Subject from the original (``dsn.subject``), never
hands the ``email`` header parser an unbounded value (its time and memory grow faster than
linearly with encoded words: a 300 KB Subject of ``=?utf-8?b?5a6b?=`` cost 2.1 GB), never raises
on a control character in ENVID/ORCPT/the remote's reply, and falls back to a plain report when
the full one cannot be composed. The assertions are on what comes out, not on time or memory;
the 1 MB cases run in a child process with an address-space limit so that the code before the
fix fails them with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import email
import email.header
import logging
import subprocess
import sys
import textwrap
from dataclasses import replace
from email import policy
from email.headerregistry import AddressHeader, UnstructuredHeader
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dsn.test_compose import ORIGINAL, report
from tests.queue.reports import parse_report
from todoku.dsn.compose import compose, original_subject
from todoku.dsn.model import ReportKind

# The bounds the tests hold the code to, wider than the code's own (dsn.subject: 40 encoded
# words, 200 characters); names that only exist after the fix are imported inside the tests,
# so that on the code before it each test fails on its own assertion.
WORDS_BOUND = 64
SUBJECT_BOUND = 200

WORD = b"=?utf-8?b?5a6b?="  # the word of the report in issue 12
CHAR = "宛"  # what it decodes to


def hostile(size: int, body: bytes = b"hello\r\n") -> bytes:
    return b"From: x@remote.test\r\nSubject: " + WORD * (size // len(WORD)) + b"\r\n\r\n" + body


# ------------------------------------------------------------------ the Subject a report quotes


def test_copied_subject_is_bounded_in_encoded_words_and_length() -> None:
    # 20 KB: harmless for the stdlib parser too, so this fails cleanly on the old code, which
    # decoded every word and kept 200 of them.
    quoted = original_subject(hostile(20_000))
    assert quoted and set(quoted) == {CHAR}
    assert quoted.count(CHAR) <= WORDS_BOUND and len(quoted) <= SUBJECT_BOUND
    from todoku.dsn.subject import MAX_ENCODED_WORDS

    assert quoted == CHAR * MAX_ENCODED_WORDS


def test_copied_subject_is_bounded_for_long_plain_text() -> None:
    quoted = original_subject(b"Subject: " + b"word " * 200_000 + b"\r\n\r\nbody\r\n")
    assert quoted == ("word " * 40)[:SUBJECT_BOUND].strip()


def test_only_a_bounded_prefix_of_the_field_is_read() -> None:
    # Past SUBJECT_SOURCE_LIMIT octets nothing is looked at: a marker there never shows.
    source = b"Subject: " + b"=?us-ascii?q?a?= " * 2 + b" " * 10_000 + b"MARKER\r\n\r\n"
    assert original_subject(source) == "aa"


CASES = {
    "plain": (b"Subject: plans\r\n", "plans"),
    "case and spacing": (b"SUBJECT :   plans  \r\n", "plans"),
    "q encoding": (b"Subject: =?utf-8?q?caf=C3=A9_au?= lait\r\n", "café au lait"),
    "space between words dropped": (b"Subject: =?utf-8?q?a?= \t =?utf-8?q?b?=\r\n", "ab"),
    "folded": (b"Subject: one\r\n two\r\n\tthree\r\nFrom: x\r\n", "one two three"),
    "character split between words": (b"Subject: =?utf-8?q?=E5=AE?= =?utf-8?q?=9B?=\r\n", "宛"),
    "other charset": (b"Subject: =?iso-2022-jp?b?GyRCJUYlOSVIGyhC?=\r\n", "テスト"),
    "rfc 2231 language": (b"Subject: =?utf-8*ja?b?5a6b?=\r\n", "宛"),
    "lower-case b": (b"Subject: =?UTF-8?B?5a6b?=\r\n", "宛"),
    "unknown charset": (b"Subject: =?x-nonesuch?q?ok?=\r\n", "ok"),
    "idna with 0xFF": (b"Subject: =?idna?q?=FF?=\r\n", "\ufffd"),
    "non-text codec": (b"Subject: =?base64?q?abc?=\r\n", "abc"),
    "undefined codec": (b"Subject: =?undefined?q?abc?=\r\n", "abc"),
    "bad base64 kept as written": (b"Subject: =?utf-8?b?5?= x\r\n", "=?utf-8?b?5?= x"),
    "control characters": (b"Subject: a\x1b[31mb =?utf-8?q?c=00=07d=0D=0Ae?=\r\n", "a [31mb c d e"),
    "utf-8 header (RFC 6532)": ("Subject: Grüße\r\n".encode(), "Grüße"),
    "none": (b"From: x\r\n", ""),
    "only in the body": (b"From: x\r\n\r\nSubject: no\r\n", ""),
    "empty header block": (b"\r\nSubject: no\r\n", ""),
}


@pytest.mark.parametrize("field, expected", CASES.values(), ids=CASES.keys())
def test_subject_decoding(field: bytes, expected: str) -> None:
    assert (
        original_subject(
            b"From: a@example.test\r\n" * (field != b"\r\nSubject: no\r\n")
            + field
            + b"\r\nbody\r\n"
        )
        == expected
    )


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")),
        min_size=1,
        max_size=60,
    )
)
def test_subject_decodes_what_the_stdlib_encodes(text: str) -> None:
    encoded = email.header.Header(text, "utf-8").encode().encode("ascii")
    assert original_subject(b"Subject: " + encoded + b"\r\n\r\n") == text


def test_original_subject_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from todoku.dsn import subject as subject_module

    def boom(text: str) -> str:
        raise MemoryError

    monkeypatch.setattr(subject_module, "decode_words", boom)
    assert original_subject(ORIGINAL) == ""


# ------------------------------------------------------------------ no unbounded parse

PARSE_LIMIT = 5000


@pytest.fixture
def bounded_header_parser(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Refuse (before any work) to parse a header value longer than PARSE_LIMIT."""
    seen: list[int] = []
    for cls in (UnstructuredHeader, AddressHeader):
        real = cls.value_parser

        def guarded(value: str, real=real) -> object:  # type: ignore[no-untyped-def]
            seen.append(len(value))
            if len(value) > PARSE_LIMIT:
                raise AssertionError(f"the header parser was given {len(value)} characters")
            return real(value)

        monkeypatch.setattr(cls, "value_parser", staticmethod(guarded))
    return seen


@pytest.mark.parametrize("kind", list(ReportKind))
def test_no_header_value_from_outside_reaches_the_parser_unbounded(
    kind: ReportKind, bounded_header_parser: list[int]
) -> None:
    original = hostile(1_000_000)
    reply = "smtp; 550 5.7.1 " + (WORD.decode() + " ") * 50_000  # 200 lines of 4 KB can do this
    base = report(kind, original=original)
    recipient = replace(base.recipients[0], diagnostic=reply, detail=reply)
    data = compose(
        replace(base, recipients=(recipient,), original_subject=original_subject(original))
    )
    assert bounded_header_parser and max(bounded_header_parser) <= PARSE_LIMIT
    parsed = parse_report(data)
    assert parsed.subject  # our own
    assert len(parsed.recipients[0]["Diagnostic-Code"]) < 5000
    quoted = parsed.human.partition('"')[2].partition('"')[0]
    assert quoted and set(quoted) == {CHAR} and len(quoted) <= WORDS_BOUND
    if kind is ReportKind.FAILURE:
        assert original in data  # the message itself still comes back byte for byte


_CHILD = textwrap.dedent("""
    import resource, sys
    limit = 1536 * 1024 * 1024  # an address-space cap: the old code hits MemoryError here
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tests.dsn.test_compose import report
    from tests.queue.reports import parse_report
    from todoku.dsn.compose import compose, original_subject
    from todoku.dsn.model import ReportKind
    subject = b"=?utf-8?b?5a6b?=" * 65536  # 1 MiB
    original = b"From: x@remote.test\\r\\nSubject: " + subject + b"\\r\\n\\r\\nhi\\r\\n"
    for kind in ReportKind:
        quoted = original_subject(original)
        data = compose(report(kind, original=original, original_subject=quoted))
        parsed = parse_report(data)
        assert quoted and len(quoted) <= 200, quoted
        assert quoted in parsed.human
    print("composed")
""")


def test_composer_returns_for_a_1_mb_hostile_subject() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0 and result.stdout.strip() == "composed", result.stderr[-3000:]


# ------------------------------------------------------------------ control characters


def test_control_characters_from_an_old_queue_entry_never_raise() -> None:
    # Accepted before MAIL FROM refused them (finding 5): the composer must cope on its own.
    base = report(ReportKind.FAILURE, envid="abc\r\nX-Injected: yes\x1b[2J\x07\x00")
    recipient = replace(
        base.recipients[0],
        original_recipient="rfc822;bob\r\nX-Orcpt-Injected: yes\x1b@remote.test",
        diagnostic="smtp; 550 5.1.1 no\x1b[31m such\x00 user\r\nX-Diag-Injected: yes",
        remote_mta="mx1.remote.test\r\nX-Mta: yes",
    )
    data = compose(replace(base, recipients=(recipient,), original_subject="hi\x1b\r\nthere"))
    for bad in (
        b"\x1b",
        b"\x07",
        b"\x00",
        b"\nX-Injected",
        b"\nX-Orcpt-Injected",
        b"\nX-Diag-Injected",
        b"\nX-Mta",
    ):
        assert bad not in data, bad
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    parsed = parse_report(data)
    assert parsed.per_message["Original-Envelope-Id"] == "abcX-Injected: yes[2J"
    [block] = parsed.recipients
    assert block["Original-Recipient"] == "rfc822;bobX-Orcpt-Injected: yes@remote.test"
    assert block["Diagnostic-Code"].startswith("smtp; 550 5.1.1 no [31m such  user")
    assert "X-Injected" not in parsed.message and "X-Orcpt-Injected" not in block


# ------------------------------------------------------------------ the plain fallback


class Unreadable(bytes):
    """An original that fails the moment the composer looks at it (fault injection)."""

    def partition(self, sep):  # type: ignore[no-untyped-def, override]
        raise MemoryError


@pytest.mark.parametrize("kind", list(ReportKind))
def test_a_report_that_cannot_be_composed_falls_back_to_a_plain_one(
    kind: ReportKind, caplog: pytest.LogCaptureFixture
) -> None:
    broken = report(kind, original=Unreadable(ORIGINAL), envid="E-secret")
    with pytest.raises(MemoryError):
        compose(broken)
    with caplog.at_level(logging.ERROR, "todoku.dsn"):
        from todoku.dsn.compose import compose_safely

        data = compose_safely(broken, now=1_700_000_200.0)
    assert "could not be composed" in caplog.text and "Q1" in caplog.text
    message = email.message_from_bytes(data, policy=policy.default)
    assert message.get_content_type() == "multipart/report"
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status"]
    human = parts[0].get_content()
    assert "could not be included" in human and "It is attached below" not in human
    assert "plans" not in human  # nothing copied: not even the Subject
    for copied in (
        b"see you at 10",
        b"Subject: plans",
        b"E-secret",
        b"Bob@remote.test",
        b"User unknown",
    ):
        assert copied not in data, copied
    status = parts[1].get_payload()
    assert status[1]["Final-Recipient"] == "rfc822; bob@remote.test"
    assert status[1]["Status"] == report(kind).recipients[0].status


def test_plain_report_in_japanese_says_the_original_is_missing() -> None:
    from todoku.dsn.compose import compose_safely

    data = compose_safely(report(ReportKind.FAILURE, lang="ja", original=Unreadable(ORIGINAL)))
    human = email.message_from_bytes(data, policy=policy.default).get_payload()[0].get_content()
    assert "含められませんでした" in human and "添付しています" not in human
