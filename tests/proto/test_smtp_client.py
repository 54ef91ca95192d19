"""The SMTP client core's reply reader without sockets: server bytes in, replies out."""

from __future__ import annotations

import pytest

from todoku.proto.errors import RemoteProtocolError
from todoku.proto.smtp.client import MAX_REPLY_LINE, ClientConnection, ReplyEvent
from todoku.proto.smtp.events import NEED_DATA


def read(reads: list[bytes]) -> list[ReplyEvent]:
    """Feed each read and collect the replies until the core needs more."""
    conn = ClientConnection()
    events: list[ReplyEvent] = []
    for data in reads:
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, ReplyEvent)
            events.append(event)
    return events


def cut(data: bytes, how: str) -> list[bytes]:
    if how == "one read":
        return [data]
    if how == "before its CRLF":
        return [data[:-2], data[-2:]]
    return [data[i : i + 1] for i in range(len(data))]


HOW = ["one read", "before its CRLF", "octet by octet"]


@pytest.mark.parametrize("how", HOW)
def test_an_over_long_reply_line_is_refused_however_it_is_read(how: str) -> None:
    # Issue 12: the limit was only checked while a line was unfinished.
    line = b"220 " + b"x" * (MAX_REPLY_LINE - 3) + b"\r\n"  # one octet over, before CRLF
    with pytest.raises(RemoteProtocolError, match="reply line too long"):
        read(cut(line, how))


@pytest.mark.parametrize("how", HOW)
def test_a_reply_line_of_the_largest_size_is_read_however_it_arrives(how: str) -> None:
    line = b"220 " + b"x" * (MAX_REPLY_LINE - 4) + b"\r\n"
    [event] = read(cut(line, how))
    assert event.reply.code == 220 and len(event.reply.lines[0]) == MAX_REPLY_LINE - 4
