"""The sans-I/O SMTP client core: bytes in, replies out; commands in, bytes out. No sockets."""

from __future__ import annotations

import pytest

from todoku.proto.errors import LocalProtocolError, RemoteProtocolError
from todoku.proto.smtp import client as proto
from todoku.proto.smtp.client import ClientConnection, ReplyEvent
from todoku.proto.smtp.events import NEED_DATA, PAUSED

EHLO_REPLY = (
    b"250-mx.remote.test Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
    b"250-DSN\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n"
)


def events(conn: ClientConnection, data: bytes) -> list[ReplyEvent]:
    conn.receive_data(data)
    out = []
    while True:
        event = conn.next_event()
        if not isinstance(event, ReplyEvent):
            return out
        out.append(event)


def greeted() -> ClientConnection:
    conn = ClientConnection()
    assert events(conn, b"220 mx.remote.test ESMTP\r\n")[0].command == proto.GREETING
    conn.ehlo("mx.example.test")
    events(conn, EHLO_REPLY)
    return conn


def test_multiline_reply_split_in_odd_places() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220-first line\r\n220-sec")
    assert conn.next_event() is NEED_DATA
    [event] = events(conn, b"ond\r\n220 last\r\n")
    assert event.reply.code == 220
    assert event.reply.lines == ("first line", "second", "last")


def test_ehlo_capabilities_and_size_limit() -> None:
    conn = greeted()
    assert conn.esmtp
    assert conn.supports("pipelining") and conn.supports("DSN") and conn.supports("STARTTLS")
    assert conn.max_size == 1000


def test_enhanced_code_split_off_only_when_class_matches() -> None:
    conn = greeted()
    conn.mail("a@example.test")
    conn.rcpt("b@remote.test")
    conn.rcpt("c@remote.test")
    got = events(
        conn, b"250 2.1.0 Ok\r\n550 5.1.1 <b@remote.test>: User unknown\r\n250 4.0.0 odd\r\n"
    )
    assert [(e.command, e.argument) for e in got] == [
        (proto.MAIL, "a@example.test"),
        (proto.RCPT, "b@remote.test"),
        (proto.RCPT, "c@remote.test"),
    ]
    assert (got[1].reply.code, got[1].reply.enhanced, got[1].reply.text) == (
        550,
        "5.1.1",
        "<b@remote.test>: User unknown",
    )
    assert got[2].reply.enhanced == ""  # RFC 2034: "4.0.0" on a 250 is not an enhanced code


def test_mail_and_rcpt_parameters_only_when_offered() -> None:
    conn = greeted()
    line = conn.mail(
        "a@example.test", size=500, eight_bit=True, smtputf8=True, ret="hdrs", envid="id 1"
    )
    assert (
        line
        == b"MAIL FROM:<a@example.test> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+201\r\n"
    )
    rcpt = conn.rcpt("b@remote.test", notify=("FAILURE", "DELAY"), orcpt="rfc822;b@remote.test")
    assert rcpt == b"RCPT TO:<b@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@remote.test\r\n"
    plain = ClientConnection()
    events(plain, b"220 hi\r\n")
    plain.ehlo("x")
    events(plain, b"250 only\r\n")
    assert (
        plain.mail("a@example.test", size=500, ret="FULL", envid="x")
        == b"MAIL FROM:<a@example.test>\r\n"
    )
    assert plain.rcpt("b@r.test", notify=("NEVER",)) == b"RCPT TO:<b@r.test>\r\n"


def test_dot_stuffing_across_piece_boundaries() -> None:
    conn = greeted()
    conn.data()
    pieces = [b".starts with a dot\r\n", b"middle\r", b"\n.after split crlf\r\n", b".", b"x\r\nend"]
    sent = b"".join(conn.content(p) for p in pieces) + conn.end_of_data()
    assert sent == (b"..starts with a dot\r\nmiddle\r\n..after split crlf\r\n..x\r\nend\r\n.\r\n")


def test_end_of_data_after_complete_line_adds_no_blank_line() -> None:
    conn = greeted()
    conn.data()
    assert conn.content(b"a\r\n") + conn.end_of_data() == b"a\r\n.\r\n"


def test_starttls_pauses_until_tls_started_and_forgets_capabilities() -> None:
    conn = greeted()
    conn.starttls()
    [event] = events(conn, b"220 2.0.0 Ready\r\n")
    assert event.command == proto.STARTTLS
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.ehlo("x")
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"250 injected before the handshake\r\n")
    conn.tls_started()
    assert conn.extensions == {} and conn.tls_active


def test_421_ends_the_session_and_drops_outstanding_commands() -> None:
    conn = greeted()
    conn.mail("a@example.test")
    conn.rcpt("b@remote.test")
    [event] = events(conn, b"421 4.7.0 Too many connections, slow down\r\n")
    assert event.command == proto.MAIL and conn.closed and conn.outstanding == 0


@pytest.mark.parametrize("garbage", [b"hello\r\n", b"2x0 nope\r\n", b"250-a\r\n251 b\r\n"])
def test_malformed_replies_are_remote_errors(garbage: bytes) -> None:
    conn = ClientConnection()
    conn.receive_data(garbage)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_reply_without_command_is_a_remote_error() -> None:
    conn = greeted()
    conn.receive_data(b"250 unsolicited\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


from hypothesis import given
from hypothesis import strategies as st


@given(
    lines=st.lists(st.sampled_from([b"", b".", b"..", b".x", b"a.b", b"plain"]), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_dot_stuffing_round_trips_for_any_split(lines: list[bytes], cuts: list[int]) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    points = sorted({min(c, len(content)) for c in cuts})
    pieces = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    conn = greeted()
    conn.data()
    wire = b"".join(conn.content(p) for p in pieces) + conn.end_of_data()
    assert wire.endswith(b"\r\n.\r\n") or wire == content + b".\r\n" == b".\r\n"
    body = wire[: -len(b".\r\n")]
    received = [line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n")]
    assert b"\r\n".join(received) == content
