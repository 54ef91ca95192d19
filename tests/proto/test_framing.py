"""The shared line framer: bounded lines, the same answer however input is cut, counted octets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from todoku.proto.framing import TOO_LONG, LineFramer, strip_eol


def lines_of(framer: LineFramer, limit: int) -> list[bytes | str]:
    out: list[bytes | str] = []
    while (line := framer.read_line(limit)) is not None:
        out.append("too long" if line is TOO_LONG else line)
    return out


def test_lines_keep_their_line_end_and_strip_eol_removes_it() -> None:
    framer = LineFramer()
    framer.feed(b"A1 NOOP\r\nB\nC")
    assert lines_of(framer, 100) == [b"A1 NOOP\r\n", b"B\n"]
    assert framer.buffered == 1
    assert [strip_eol(b"x\r\n"), strip_eol(b"x\n")] == [b"x", b"x"]


def test_limit_counts_the_line_end() -> None:
    framer = LineFramer()
    framer.feed(b"x" * 8 + b"\r\n" + b"y" * 9 + b"\r\n" + b"ok\r\n")
    assert lines_of(framer, 10) == [b"x" * 8 + b"\r\n", "too long", b"ok\r\n"]


def test_endless_line_is_dropped_as_it_arrives_and_reported_once_at_its_end() -> None:
    framer = LineFramer()
    for _ in range(100):
        framer.feed(b"z" * 1000)
        assert framer.read_line(512) is None
        assert framer.buffered < 1512
    framer.feed(b"\r\nNEXT\r\n")
    assert lines_of(framer, 512) == ["too long", b"NEXT\r\n"]


def test_extended_limit_is_asked_only_for_long_lines_and_sees_the_head() -> None:
    asked: list[bytes] = []

    def extended(head: bytes) -> int:
        asked.append(head)
        return 1000 if head.startswith(b"AUTH ") else 0

    framer = LineFramer()
    framer.feed(b"NOOP\r\n" + b"AUTH " + b"a" * 500 + b"\r\n" + b"XXXX " + b"a" * 500 + b"\r\n")
    assert framer.read_line(255, extended) == b"NOOP\r\n"
    assert asked == []
    line = framer.read_line(255, extended)
    assert isinstance(line, bytes) and line.startswith(b"AUTH ")
    assert framer.read_line(255, extended) is TOO_LONG
    assert len(asked) == 2 and all(len(head) == 32 for head in asked)


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=20),
)
def test_the_answer_does_not_depend_on_how_input_is_cut(
    lines: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(line + b"\r\n" for line in lines)
    whole = LineFramer()
    whole.feed(data)
    expected = lines_of(whole, 20)
    pieces = LineFramer()
    got: list[bytes | str] = []
    at = 0
    for size in cuts * (len(data) // len(cuts) + 1):
        if at >= len(data):
            break
        pieces.feed(data[at : at + size])
        at += size
        got += lines_of(pieces, 20)
    pieces.feed(data[at:])
    got += lines_of(pieces, 20)
    assert got == expected


def test_counted_octets_wait_for_all_or_take_what_is_there() -> None:
    framer = LineFramer()
    framer.feed(b"{5}\r\nhel")
    assert framer.read_line(100) == b"{5}\r\n"
    assert framer.take_exactly(5) is None
    assert framer.buffered == 3  # nothing was taken
    framer.feed(b"lo rest\r\n")
    assert framer.take_exactly(5) == b"hello"
    assert framer.take(3) == b" re"
    assert framer.skip(100) == 4
    assert framer.buffered == 0


def test_search_helpers_count_from_the_front() -> None:
    framer = LineFramer()
    framer.feed(b"abc\r\n.\r\nrest\r")
    framer.skip(1)
    assert framer.find(b"\r\n.\r\n") == 2
    assert framer.rfind(b"\n") == 6
    assert framer.startswith(b"bc")
    assert framer.endswith(b"\r")
    framer.clear()
    assert framer.buffered == 0 and not framer.endswith(b"\r")
