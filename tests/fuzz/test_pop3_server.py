"""Fuzz the POP3 server core (proto/pop3/server.py) with hostile bytes in hostile reads.

tests/proto/test_pop3_server.py checks that any sequence of *text* commands is answered and
never raises, looking at the first status word. These targets add:

* each command line gets exactly one well-formed response: a ``+OK`` or ``-ERR`` status line
  (or a SASL ``+`` continuation), and a multi-line response ends with the ``.`` line and has no
  other line that is a lone ``.`` (RFC 1939 §3); every line ends in CRLF with no bare CR or LF;
* the input the core holds stays bounded, however pipelined input is cut into reads (issue 12,
  finding 6: pipelined input split mid-line grew the buffer without bound);
* how the input is cut into reads changes nothing the client or the driver sees.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings, retained_bytes
from todoku.proto.pop3 import replies
from todoku.proto.pop3.content import encode_message
from todoku.proto.pop3.events import (
    NEED_DATA,
    PAUSED,
    Closed,
    LoginRequest,
    MaildropEntry,
    Retrieve,
    Update,
)
from todoku.proto.pop3.server import SASL_LINE_LIMIT, ServerConnection, SessionSettings, State

USER = "alice@example.test"
PASSWORD = "s3cret pass"
MESSAGES = [
    b"Subject: one\r\n\r\n.\r\n..\r\n.x\r\nend\r\n",
    b"Subject: two\r\n\r\nbare\nline ends\rhere\r\n.",
    b"",
    b"no header block at all\r\n.\r\n",
]
MAILDROP = [MaildropEntry(n, len(m), f"uid-{n}") for n, m in enumerate(MESSAGES)]
# The unfinished line the core may wait for (a SASL response), plus session facts: the maildrop
# listing, the user name, the settings.
HELD_LIMIT = 2 * SASL_LINE_LIMIT + 4096


@dataclass
class Session:
    conn: ServerConnection
    whole_messages: bool = False  # answer RETR with send_message() rather than in pieces
    tls_handshake: bool = True
    events: list[object] = field(default_factory=list)
    out: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> bytes:
        conn = self.conn
        before = len(self.out)
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if not self.tls_handshake:
                    break
                self.out += conn.data_to_send()
                conn.tls_started()
                continue
            self.events.append(event)
            if isinstance(event, LoginRequest):
                if (event.username, event.password) == (USER, PASSWORD):
                    conn.accept_login(USER, MAILDROP)
                else:
                    conn.refuse(replies.LOGIN_FAILED)
            elif isinstance(event, Retrieve):
                content = MESSAGES[event.entry.key]
                if self.whole_messages and event.body_lines is None:
                    conn.send_message(encode_message(content))
                else:
                    conn.begin_content()
                    for start in range(0, len(content), 5):
                        if conn.wants_content:
                            conn.send_content(content[start : start + 5])
                    conn.end_content()
            elif isinstance(event, Update):
                conn.finish_update()
            elif isinstance(event, Closed):
                break
        self.out += conn.data_to_send()
        return bytes(self.out[before:])


SETTINGS = SessionSettings("pop.example.test", tls_available=True)
# Logins without TLS (the loopback opt-in) reach every state without a handshake.
PLAIN = SessionSettings("pop.example.test", tls_available=True, plaintext_login_allowed=True)


def start(
    settings: SessionSettings = SETTINGS,
    *,
    whole_messages: bool = False,
    tls_handshake: bool = True,
) -> Session:
    session = Session(ServerConnection(settings), whole_messages, tls_handshake)
    session.out += session.conn.data_to_send()
    return session


def run(reads: list[bytes], settings: SessionSettings, *, tls_handshake: bool) -> Session:
    session = start(settings, tls_handshake=tls_handshake)
    for data in [*reads, b""]:
        session.feed(data)
    return session


def framed_lines(out: bytes) -> list[bytes]:
    assert out.endswith(b"\r\n"), out[-80:]
    lines = out[:-2].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, f"bare CR/LF in {line!r}"
    return lines


_STATUS = re.compile(rb"(\+OK|-ERR)( .*)?|\+ [A-Za-z0-9+/]*={0,2}", re.DOTALL)
_TOO_MANY_ERRORS = b"-ERR Too many errors; closing the connection"


def check_one_response(out: bytes) -> None:
    """``out`` is exactly one response (and the goodbye of a session closed for its errors)."""
    lines = framed_lines(out)
    if len(lines) > 1 and lines[-1] == _TOO_MANY_ERRORS:
        lines = lines[:-1]
    first = lines[0]
    # RFC 1939 §3 status indicator, RFC 5034 §4 continuation ("+ " and base64).
    assert _STATUS.fullmatch(first), f"not a status line: {first!r}"
    first.decode("utf-8")
    if len(lines) > 1:
        assert first.startswith(b"+OK"), lines
        assert lines[-1] == b".", f"multi-line response without its end: {lines[-3:]!r}"
        assert b"." not in lines[1:-1], "a lone '.' inside a multi-line response"


# ----------------------------------------------------------------- strategies

COMMANDS = [
    f"USER {USER}",
    f"PASS {PASSWORD}",
    "PASS wrong",
    "USER",
    "AUTH",
    "AUTH PLAIN",
    "AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
    "AUTH LOGIN",
    base64.b64encode(USER.encode()).decode(),
    base64.b64encode(PASSWORD.encode()).decode(),
    "AUTH CRAM-MD5",
    "*",
    "=",
    "STLS",
    "CAPA",
    "STAT",
    "LIST",
    "LIST 1",
    "UIDL",
    "UIDL 4",
    "RETR 1",
    "RETR 2",
    "RETR 3",
    "TOP 1 0",
    "TOP 2 1",
    "TOP 4 99999999999999999999",
    "DELE 1",
    "RSET",
    "NOOP",
    "LAST",
    "APOP a b",
    "QUIT",
    "retr 01",
    "LIST 99999999999999999999999",
]


def _line(text: bytes, end: bytes) -> bytes:
    return text.replace(b"\n", b"") + end


LINES = st.one_of(
    st.sampled_from(COMMANDS).map(lambda c: c.encode() + b"\r\n"),
    st.builds(_line, st.binary(max_size=40), st.sampled_from([b"\r\n", b"\n"])),
    st.builds(
        lambda verb, n: verb + b"x" * n + b"\r\n",
        st.sampled_from([b"USER ", b"AUTH PLAIN ", b"PASS ", b"", b"LIST "]),
        st.integers(200, 14_000),
    ),
)
SESSION_LINES = st.lists(LINES, max_size=30)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# ----------------------------------------------------------------- properties


@fuzz_settings()
@given(
    lines=SESSION_LINES,
    whole_messages=st.booleans(),
    tls_handshake=st.booleans(),
    plain=st.booleans(),
)
def test_each_command_line_gets_one_well_formed_response(
    lines: list[bytes], whole_messages: bool, tls_handshake: bool, plain: bool
) -> None:
    session = start(
        PLAIN if plain else SETTINGS, whole_messages=whole_messages, tls_handshake=tls_handshake
    )
    check_one_response(bytes(session.out))  # the greeting
    for line in lines:
        closed_before = session.conn.closing
        paused = session.conn.state is State.TLS_PENDING
        out = session.feed(line)
        if closed_before or paused:
            assert out == b""  # nothing is read after the end, nor before the TLS handshake
        else:
            check_one_response(out)
    session.feed(b"")
    assert session.conn.closing or not tls_handshake


@fuzz_settings()
@given(lines=SESSION_LINES, cuts=st.lists(st.integers(0, 120_000), max_size=40))
# Issue 12, finding 6: pipelined commands in reads that each end mid-line (the buffer was only
# trimmed when a read ended on a line end).
@example(lines=[b"CAPA\r\n"] * 8000, cuts=list(range(1023, 48_000, 1020)))
def test_input_held_stays_bounded_however_it_is_cut(lines: list[bytes], cuts: list[int]) -> None:
    session = start(PLAIN)
    data = b"".join(lines)
    for piece in split(data, cuts):
        session.feed(piece)
        held = retained_bytes(session.conn)
        assert held <= HELD_LIMIT + len(piece), f"{held} octets held after a read of {len(piece)}"


def _same_whatever_the_reads(data: bytes, cuts: list[int]) -> None:
    # Without a TLS handshake: what follows STLS in its own read is rightly dropped (RFC 2595
    # §4), while a later read would be taken after the handshake.
    whole = run([data] if data else [], PLAIN, tls_handshake=False)
    parts = run(split(data, cuts), PLAIN, tls_handshake=False)
    assert bytes(parts.out) == bytes(whole.out)
    assert parts.events == whole.events


@fuzz_settings()
@given(lines=SESSION_LINES, cuts=st.lists(st.integers(0, 120_000), max_size=10))
def test_how_the_input_is_cut_into_reads_changes_nothing(
    lines: list[bytes], cuts: list[int]
) -> None:
    # SASL responses longer than the SASL limit are the next target's.
    assume(all(len(line) < SASL_LINE_LIMIT for line in lines))
    _same_whatever_the_reads(b"".join(lines), cuts)


_LONG_SASL = b"AUTH PLAIN\r\n" + b"A" * 12_289 + b"\r\nNOOP\r\n"


@fuzz_settings(0.5)
@given(lines=SESSION_LINES, cuts=st.lists(st.integers(0, 120_000), max_size=10))
@example(lines=[_LONG_SASL], cuts=[len(_LONG_SASL) - 8])
def test_over_long_lines_are_answered_the_same_whatever_the_reads(
    lines: list[bytes], cuts: list[int]
) -> None:
    _same_whatever_the_reads(b"".join(lines), cuts)
