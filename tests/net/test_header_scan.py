"""The header scan of the SMTP accept path (ingest.HeaderScan): the same answer however the content
is cut, and work that grows with the content, not with its square (issue 12, finding 8)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.ingest import HEADER_SCAN_LIMIT, HeaderFacts, HeaderScan

MESSAGE = (
    b"Received: from a\r\nReceived: from b\r\nSubject: =?utf-8?q?caf=C3=A9?= and\r\n more\r\n"
    b"From: x@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"
    b"Body\r\n\r\nwith an empty line\r\n"
)


def scan(pieces: list[bytes]) -> tuple[bytes, HeaderFacts | None, int]:
    """Everything the scan gave back (in order), its facts, and the octet it first gave back at."""
    scanner = HeaderScan()
    out = b""
    first = -1
    for index, piece in enumerate(pieces):
        held = scanner.feed(piece)
        if held is not None:
            first = index
            out = held + b"".join(pieces[index + 1 :])
            break
    else:
        out = scanner.finish()
    return out, scanner.facts, first


def cut(content: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(content), *(c % (len(content) + 1) for c in cuts)})
    return [content[a:b] for a, b in itertools.pairwise(points)] or [b""]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            MESSAGE,
            b"\r\nno header at all\r\n",
            b"\r",
            b"Subject: only headers\r\n",
            b"Subject: x\r\n\r\n",
            b"X: a\r\n\r\r\n\n\r\n\r\nbody",
            b"",
        ]
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_cut_gives_what_one_piece_gives(content: bytes, cuts: list[int]) -> None:
    whole, whole_facts, _ = scan([content])
    pieces, facts, _ = scan(cut(content, cuts))
    assert pieces == whole == content
    assert facts == whole_facts


def test_one_octet_at_a_time_is_the_same_as_at_once() -> None:
    whole, whole_facts, _ = scan([MESSAGE])
    one_by_one, facts, first = scan([MESSAGE[i : i + 1] for i in range(len(MESSAGE))])
    assert one_by_one == whole == MESSAGE
    assert facts == whole_facts
    assert facts is not None and facts.subject == "café and more" and facts.received_count == 2
    assert first == MESSAGE.index(b"\r\n\r\n") + 3  # given back at the empty line, not later


def test_header_in_small_pieces_is_searched_once() -> None:
    """200 KiB of header fields in 16-octet pieces: every octet is searched about once (the old
    scan joined and searched everything held again for each piece: ~1.3e9 octets here)."""
    header = b"".join(b"X-Filler-%06d: %s\r\n" % (n, b"y" * 40) for n in range(200 * 1024 // 57))
    content = header + b"\r\nbody\r\n"
    assert len(header) < HEADER_SCAN_LIMIT
    scanner = HeaderScan()
    given_back = None
    for start in range(0, len(content), 16):
        given_back = scanner.feed(content[start : start + 16])
        if given_back is not None:
            break
    assert given_back == content[: len(given_back)] and len(given_back) > len(header)
    assert scanner.octets_searched <= 2 * len(content)


def test_no_empty_line_within_the_limit_is_body() -> None:
    content = b"x" * (HEADER_SCAN_LIMIT + 10)
    scanner = HeaderScan()
    given_back = None
    for start in range(0, len(content), 1000):
        given_back = scanner.feed(content[start : start + 1000])
        if given_back is not None:
            break
    assert given_back is not None and len(given_back) >= HEADER_SCAN_LIMIT
    assert content.startswith(given_back)
    assert scanner.facts is not None and scanner.facts.received_count == 0
