"""Fuzz the SMTP client core's reply reader (proto/smtp/client.py) with hostile server bytes.

The client reads what any server on the Internet sends. Whatever it is, ``next_event`` returns a
``ReplyEvent``, ``NEED_DATA`` or ``PAUSED``, or raises ``RemoteProtocolError`` (the documented
"the peer broke the protocol"); replies are matched to commands in order; each reply keeps the
client's limits (``MAX_REPLY_LINE``, ``MAX_REPLY_LINES``); and a reply the server core renders
is read back as the same code, enhanced code and lines.
"""

from __future__ import annotations

import re

from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings, retained_bytes
from todoku.proto.errors import RemoteProtocolError
from todoku.proto.smtp import client
from todoku.proto.smtp.client import ClientConnection, ReplyEvent
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import NEED_DATA, PAUSED

_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")
COMMANDS = ("ehlo", "starttls", "mail", "rcpt", "data", "noop", "rset", "quit")


def send(conn: ClientConnection, command: str) -> None:
    """Queue one command the way the adapter does (its bytes are not needed here)."""
    if command == "ehlo":
        conn.ehlo("client.example.test")
    elif command == "mail":
        conn.mail("alice@example.test", size=10, envid="e")
    elif command == "rcpt":
        conn.rcpt("bob@example.test", notify=("FAILURE",), orcpt="rfc822;bob@example.test")
    else:
        getattr(conn, command)()


def read_all(
    conn: ClientConnection, reads: list[bytes], after_read: bool = False
) -> tuple[list[ReplyEvent], str | None]:
    """Feed the reads, collect the replies; the error that ended the session, if any."""
    events: list[ReplyEvent] = []
    try:
        for data in reads:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is NEED_DATA or event is PAUSED:
                    break
                assert isinstance(event, ReplyEvent), event
                events.append(event)
            if after_read:
                held = retained_bytes(conn)
                bound = (client.MAX_REPLY_LINE + 2) * client.MAX_REPLY_LINES
                assert held <= bound + len(data), f"{held} octets held after {len(data)}"
    except RemoteProtocolError as exc:
        return events, str(exc)
    return events, None


LINE = st.one_of(
    st.builds(
        lambda code, sep, text, end: code + sep + text + end,
        st.sampled_from(
            [b"220", b"250", b"354", b"421", b"451", b"550", b"199", b"600", b"25", b""]
        ),
        st.sampled_from([b" ", b"-", b"", b"\t"]),
        st.one_of(
            st.sampled_from([b"2.0.0 Ok", b"5.1.1 <x>: no", b"4.7.0 x", b"SIZE 100", b"DSN"]),
            st.binary(max_size=30),
        ),
        st.sampled_from([b"\r\n", b"\n", b"\r", b""]),
    ),
    st.binary(max_size=50),
    st.builds(lambda n: b"250-" + b"x" * n + b"\r\n", st.integers(4000, 5000)),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@fuzz_settings()
@given(
    commands=st.lists(st.sampled_from(COMMANDS), max_size=6),
    lines=st.lists(LINE, max_size=30),
    cuts=st.lists(st.integers(0, 20_000), max_size=8),
)
def test_any_server_bytes_give_replies_in_order_or_a_protocol_error(
    commands: list[str], lines: list[bytes], cuts: list[int]
) -> None:
    conn = ClientConnection()
    sent = ["greeting"]
    for command in commands:
        send(conn, command)
        sent.append(command.replace("ehlo", client.EHLO))
    events, _ = read_all(conn, split(b"".join(lines), cuts), after_read=True)
    assert [e.command for e in events] == sent[: len(events)]  # RFC 2920 §3: in order
    for event in events:
        reply = event.reply
        assert 100 <= reply.code <= 599
        assert reply.enhanced == "" or (
            _ENHANCED.fullmatch(reply.enhanced) and reply.enhanced[0] == str(reply.code)[0]
        )
        assert 1 <= len(reply.lines) <= client.MAX_REPLY_LINES
        # Each line's text fits in MAX_REPLY_LINE (a character is at least one octet).
        assert all(len(text) <= client.MAX_REPLY_LINE for text in reply.lines)
        assert all("\n" not in text for text in reply.lines)


def _same_whatever_the_reads(data: bytes, cuts: list[int]) -> None:
    whole = read_all(ClientConnection(), [data])
    parts = read_all(ClientConnection(), split(data, cuts))
    assert parts == whole


@fuzz_settings()
@given(lines=st.lists(LINE, max_size=30), cuts=st.lists(st.integers(0, 20_000), max_size=8))
def test_how_the_server_bytes_are_cut_into_reads_changes_nothing(
    lines: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(lines)
    # Lines over the limit are the next target's.
    assume(all(len(line) <= client.MAX_REPLY_LINE for line in data.split(b"\n")))
    _same_whatever_the_reads(data, cuts)


@fuzz_settings()
@given(lines=st.lists(LINE, max_size=30), cuts=st.lists(st.integers(0, 20_000), max_size=8))
@example(lines=[b"220 " + b"x" * client.MAX_REPLY_LINE + b"\r\n"], cuts=[4 + client.MAX_REPLY_LINE])
def test_over_long_reply_lines_are_refused_whatever_the_reads(
    lines: list[bytes], cuts: list[int]
) -> None:
    _same_whatever_the_reads(b"".join(lines), cuts)


# ----------------------------------------------------------------- the server core's replies

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=40,
)


@fuzz_settings()
@given(
    code=st.integers(200, 599),
    enhanced=st.one_of(
        st.just(""),
        st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda t: f"{t[0]}.{t[1]}"),
    ),
    lines=st.lists(TEXT, min_size=1, max_size=5),
)
def test_replies_rendered_by_the_server_core_read_back_the_same(
    code: int, enhanced: str, lines: list[str]
) -> None:
    full = f"{str(code)[0]}.{enhanced}" if enhanced else ""
    if full:
        assume(full[0] in "245")  # RFC 3463 §3: the only classes of an enhanced code
    else:
        # Without an enhanced code, a text that starts like one would rightly be read as one.
        assume(not any(re.match(r"[245]\.\d{1,3}\.\d{1,3}( |$)", line) for line in lines))
    rendered = Reply(code, full, "\n".join(lines)).to_bytes()
    conn = ClientConnection()
    events, error = read_all(conn, [rendered])
    assert error is None
    [event] = events
    assert (event.reply.code, event.reply.enhanced, event.reply.lines) == (code, full, tuple(lines))
