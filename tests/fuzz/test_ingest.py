"""Fuzz the ingest header scan (ingest.py ``HeaderScan``, ``scan_headers``) with hostile content.

The scan holds back the start of every message an unauthenticated client sends, until the header
block ends. Whatever the content and however it is cut into pieces:

* nothing is lost or reordered: what ``feed`` returns and ``finish`` gives back is the content;
* the facts found (Subject, Message-ID, Date, From, Received count) do not depend on the pieces;
* the held content is bounded (HEADER_SCAN_LIMIT plus the piece just fed) and the search work is
  linear in the content (issue 12, finding 8: small pieces cost quadratic CPU);
* ``scan_headers`` never raises and its Subject is bounded.
"""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings, retained_bytes
from todoku.ingest import HEADER_SCAN_LIMIT, HeaderFacts, HeaderScan, scan_headers

PIECES = [
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"\n\n",
    b" ",
    b"\t",
    b":",
    b"Subject: ",
    b"subject:",
    b"Message-ID: <a@b>",
    b"Date: x",
    b"From: a@b",
    b"Received: from x",
    b"RECEIVED:",
    b"\xff",
    b"\xc3\xa9",
    b"=?utf-8?q?a=0D=0Ab?=",
    b"=?utf-8?b?5a6b?=",
    b"body",
    b".",
]
CONTENT = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=6)), max_size=40).map(b"".join),
    st.binary(max_size=300),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def scan(pieces: list[bytes]) -> tuple[bytes, HeaderFacts | None]:
    """Feed the pieces as the SMTP adapter does; return the content passed on and the facts."""
    scanner = HeaderScan()
    out = bytearray()
    for index, piece in enumerate(pieces):
        held = scanner.feed(piece)
        assert retained_bytes(scanner) <= HEADER_SCAN_LIMIT + len(piece) + 1024
        if held is not None:
            out += held
            out += b"".join(pieces[index + 1 :])  # the rest streams past the scanner
            break
    else:
        out += scanner.finish()
    searched = getattr(scanner, "octets_searched", None)
    if searched is not None:  # linear work: each octet searched a bounded number of times
        assert searched <= 2 * sum(len(p) for p in pieces) + 8 * len(pieces)
    return bytes(out), scanner.facts


def _no_base64_words(data: bytes) -> bool:
    return b"?b?" not in data.lower()  # (they are the last target's)


@fuzz_settings(2)
@given(content=CONTENT, cuts=st.lists(st.integers(0, 300), max_size=12))
def test_the_scan_loses_nothing_and_finds_the_same_facts_however_cut(
    content: bytes, cuts: list[int]
) -> None:
    assume(_no_base64_words(content))
    whole, facts = scan([content])
    assert whole == content
    pieces = split(content, cuts)
    assert scan(pieces) == (content, facts)
    assert scan([bytes([b]) for b in content]) == (content, facts)


@fuzz_settings(0.5)
@given(unit=st.sampled_from([b"X-A: b\r\n", b"a", b"\r\n "]), size=st.integers(1, 8))
def test_a_header_that_never_ends_is_bounded(unit: bytes, size: int) -> None:
    content = unit * (HEADER_SCAN_LIMIT // len(unit) + 10)
    pieces = [content[i : i + size * 997] for i in range(0, len(content), size * 997)]
    out, facts = scan(pieces)
    assert out == content and facts is not None


@fuzz_settings()
@given(content=CONTENT)
@example(content=b"Subject: =?utf-8?b?a?=\r\n\r\n")
def test_scan_headers_never_raises(content: bytes) -> None:
    facts = scan_headers(content)
    assert len(facts.subject) <= 300
