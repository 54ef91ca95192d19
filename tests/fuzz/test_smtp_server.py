"""Fuzz the SMTP server core (proto/smtp/server.py) with hostile bytes, split into hostile reads.

tests/proto/test_smtp_server.py already checks that any input gets replies with a 3-digit code
and an enhanced code where one is due. These targets add what that leaves open:

* every reply *line* is well formed: CRLF-terminated, no bare CR or LF, no NUL, UTF-8, at most
  512 octets (RFC 5321 §4.5.3.1.5), and the lines of a multi-line reply share their code;
* every command line gets exactly one reply, whatever the reads (PIPELINING, RFC 2920 §3);
* the core keeps a bounded amount of input: at most a line limit plus the read just fed;
* how the input is cut into reads changes nothing the peer or the driver sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings, retained_bytes
from todoku.proto.errors import RemoteProtocolError
from todoku.proto.smtp import codes, server
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import (
    DECISIONS,
    NEED_DATA,
    PAUSED,
    AuthRequest,
    Closed,
    DataCommand,
    EndOfData,
    MailFrom,
    RcptTo,
)
from todoku.proto.smtp.server import ServerConnection, SessionSettings

PASSWORD = "secret"
SETTINGS = SessionSettings(
    hostname="mx.example.test",
    max_message_size=200_000,
    tls_available=True,
    auth_enabled=True,
    auth_requires_tls=False,
)
# What the core may hold beyond the read just fed: the longest line it waits for (a SASL
# response, or a DATA line passed on in pieces), plus small session facts (HELO name, the user
# name of a LOGIN exchange, the settings).
HELD_LIMIT = max(server.SASL_LINE_LIMIT, server.MID_LINE_CHUNK) + 2 * server.SASL_LINE_LIMIT
REPLY_LINE_LIMIT = 512  # RFC 5321 §4.5.3.1.5, reply code and CRLF included
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])(.*)", re.DOTALL)


def answer(event: object) -> Reply:
    """The adapter's answers, reduced to what a session needs to go everywhere."""
    if isinstance(event, MailFrom):
        return codes.SENDER_OK
    if isinstance(event, RcptTo):
        if event.recipient.local.lower() == "unknown":
            return codes.user_unknown(str(event.recipient))
        return codes.RECIPIENT_OK
    if isinstance(event, DataCommand):
        return codes.START_DATA
    if isinstance(event, EndOfData):
        return codes.queued("Q1")
    if isinstance(event, AuthRequest):
        return codes.AUTH_OK if event.password == PASSWORD else codes.AUTH_INVALID
    raise AssertionError(f"not a decision: {event!r}")


@dataclass
class Session:
    conn: ServerConnection
    tls_handshake: bool = True  # answer StartTLS by finishing the handshake
    events: list[object] = field(default_factory=list)
    out: bytearray = field(default_factory=bytearray)
    after_read: Callable[[ServerConnection, bytes], None] | None = None

    def feed(self, piece: bytes) -> None:
        self.conn.receive_data(piece)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if not self.tls_handshake:
                    break
                self.out += self.conn.data_to_send()
                self.conn.tls_started()
                continue
            self.events.append(event)
            if isinstance(event, DECISIONS):
                self.conn.reply(answer(event))
            if isinstance(event, Closed):
                break
        self.out += self.conn.data_to_send()
        if self.after_read is not None:
            self.after_read(self.conn, piece)


def run(pieces: list[bytes], settings: SessionSettings = SETTINGS, **kw: object) -> Session:
    """Feed each piece as one read, then the end of input; a RemoteProtocolError ends it."""
    session = Session(ServerConnection(settings), **kw)  # type: ignore[arg-type]
    session.out += session.conn.data_to_send()
    try:
        for piece in [*pieces, b""]:
            session.feed(piece)
    except RemoteProtocolError:
        pass  # the peer broke the protocol: the adapter closes the connection
    return session


def reply_lines(out: bytes) -> list[bytes]:
    """Check the framing of everything sent and return the reply lines (without CRLF)."""
    assert out.endswith(b"\r\n"), out[-80:]
    lines = out[:-2].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, f"bare CR/LF in reply line {line!r}"
        assert b"\0" not in line, line
        line.decode("utf-8")  # replies are UTF-8 (RFC 6531 §3.7.4.1); raises if not
        assert _REPLY_LINE.fullmatch(line), f"not a reply line: {line!r}"
    return lines


def check_replies(out: bytes) -> list[bytes]:
    """Well-formed replies; returns the code of each complete reply."""
    finals: list[bytes] = []
    pending: bytes | None = None
    for line in reply_lines(out):
        match = _REPLY_LINE.fullmatch(line)
        assert match is not None
        code, sep, text = match.groups()
        if pending is not None:
            assert code == pending, f"multi-line reply changed its code: {line!r}"
        enhanced = re.match(rb"([245])\.\d{1,3}\.\d{1,3}( |$)", text)
        if enhanced:
            assert enhanced.group(1) == code[:1], f"enhanced class differs from the code: {line!r}"
        if sep == b"-":
            pending = code
        else:
            finals.append(code)
            pending = None
    assert pending is None, "the output ends inside a multi-line reply"
    return finals


# ----------------------------------------------------------------- strategies

COMMANDS = [
    b"EHLO client.example.test\r\n",
    b"HELO client.example.test\r\n",
    b"EHLO\r\n",
    b"MAIL FROM:<alice@example.test>\r\n",
    b"MAIL FROM:<> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=a+2Bb\r\n",
    b"MAIL FROM:<alice@example.test> SMTPUTF8\r\n",
    b"MAIL FROM:<\xc3\xa9@\xc3\xa9.test> SMTPUTF8\r\n",
    b"RCPT TO:<bob@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+40example.test\r\n",
    b"RCPT TO:<unknown@example.test>\r\n",
    b'RCPT TO:<"a b"@[IPv6:::1]>\r\n',
    b"RCPT TO:<@relay.test:bob@example.test>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\nhello",
    b"BDAT 0 LAST\r\n",
    b"BDAT 3 LAST\r\n\r\n.",
    b"BDAT 99999999 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY bob\r\n",
    b"HELP\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    b"AUTH PLAIN\r\n",
    b"AGFsaWNlAHNlY3JldA==\r\n",
    b"AUTH LOGIN YWxpY2U=\r\n",
    b"c2VjcmV0\r\n",
    b"*\r\n",
    b"=\r\n",
    b"QUIT\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"..\r\n",
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff\xfe",
]


def _repeat(unit: bytes, count: int) -> bytes:
    return unit * count


def _command(verb: bytes, argument: bytes) -> bytes:
    return verb + argument + b"\r\n"


# Long runs cross every limit: a command line, a SASL response, a DATA line held mid-line.
LONG = st.builds(_repeat, st.binary(min_size=1, max_size=3), st.integers(100, 30_000))
# A known verb with a hostile argument, short or longer than a command line may be.
ARGUMENT = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.builds(
        _repeat, st.sampled_from([b"a", b"A", b"@", b"\xc3\xa9", b"+0D"]), st.integers(1, 3000)
    ),
)
VERBS = [
    b"MAIL FROM:<",
    b"RCPT TO:<",
    b"MAIL FROM:<a@b.test> ENVID=",
    b"RCPT TO:<b@b.test> ORCPT=",
    b"EHLO ",
    b"HELO ",
    b"VRFY ",
    b"AUTH PLAIN ",
    b"AUTH LOGIN ",
    b"BDAT ",
    b"NOOP ",
]
COMMAND = st.builds(_command, st.sampled_from(VERBS), ARGUMENT)
PIECES = st.lists(
    st.one_of(st.sampled_from(COMMANDS), COMMAND, st.binary(max_size=40), LONG),
    max_size=30,
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# ----------------------------------------------------------------- properties


def _bounded(conn: ServerConnection, piece: bytes) -> None:
    held = retained_bytes(conn)
    assert held <= HELD_LIMIT + len(piece), f"{held} octets held after a read of {len(piece)}"


@fuzz_settings()
@given(pieces=PIECES, tls_handshake=st.booleans(), small=st.booleans())
def test_replies_are_well_formed_and_input_held_is_bounded(
    pieces: list[bytes], tls_handshake: bool, small: bool
) -> None:
    settings = replace(SETTINGS, max_message_size=500) if small else SETTINGS
    session = run(pieces, settings, tls_handshake=tls_handshake, after_read=_bounded)
    check_replies(bytes(session.out))
    conn = session.conn
    assert conn.closing or not tls_handshake  # the end of input closes the session
    if conn.closing:  # nothing is read or answered after the session closed
        conn.receive_data(b"NOOP\r\n")
        assert conn.next_event() is NEED_DATA
        assert conn.data_to_send() == b""


def _long_reply_lines(out: bytes) -> list[int]:
    return [len(line) + 2 for line in reply_lines(out) if len(line) + 2 > REPLY_LINE_LIMIT]


@fuzz_settings()
@given(pieces=PIECES)
@example(pieces=[b"EHLO c\r\nMAIL FROM:<" + b"a" * 600 + b">\r\n"])
def test_reply_lines_fit_in_512_octets(pieces: list[bytes]) -> None:
    """RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, code and CRLF included."""
    assert _long_reply_lines(bytes(run(pieces).out)) == []


# Commands that leave command mode (content, SASL, TLS, the end of the session) are left out,
# so that every line read is one command.
_MODE_CHANGE = re.compile(rb"data|bdat|auth|starttls|quit", re.IGNORECASE)
COMMAND_LINES = st.lists(
    st.one_of(
        st.sampled_from([c for c in COMMANDS if c.endswith(b"\n") and c.count(b"\n") == 1]),
        COMMAND,
        st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"") + b"\r\n"),
        st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"") + b"\n"),
        st.builds(_repeat, st.sampled_from([b"x", b"A ", b"\r"]), st.integers(500, 20_000)).map(
            lambda b: b + b"\r\n"
        ),
    ).filter(lambda line: not _MODE_CHANGE.search(line)),
    max_size=30,
)


@fuzz_settings()
@given(lines=COMMAND_LINES, cuts=st.lists(st.integers(0, 100_000), max_size=8))
def test_every_command_line_gets_exactly_one_reply(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(lines)
    session = run(split(data, cuts), replace(SETTINGS, max_errors=10**6))
    finals = check_replies(bytes(session.out))
    assert finals[0] == b"220"  # the greeting
    assert len(finals) - 1 == len(lines)


def _same_whatever_the_reads(data: bytes, cuts: list[int]) -> None:
    # Without a TLS handshake: what follows STARTTLS in its own read is rightly dropped (RFC 3207
    # §5), while a later read would be taken after the handshake.
    whole = run([data] if data else [], tls_handshake=False)
    parts = run(split(data, cuts), tls_handshake=False)
    assert bytes(parts.out) == bytes(whole.out)
    assert parts.events == whole.events


@fuzz_settings()
@given(pieces=PIECES, cuts=st.lists(st.integers(0, 200_000), max_size=8))
def test_how_the_input_is_cut_into_reads_changes_nothing(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    # Lines longer than the longest command (a SASL response) are the next target's.
    assume(all(len(line) < server.SASL_LINE_LIMIT for line in data.split(b"\n")))
    _same_whatever_the_reads(data, cuts)


# In one read the line is handed to SASL whole (no limit applies); split into reads it is
# refused as too long, and the core stays in the SASL exchange, so the next command is taken
# for a SASL response.
_LONG_SASL = b"EHLO c\r\nAUTH PLAIN\r\n" + b"A" * 12_289 + b"\r\nNOOP\r\n"


@fuzz_settings(0.5)
@given(pieces=PIECES, cuts=st.lists(st.integers(0, 200_000), max_size=8))
@example(pieces=[_LONG_SASL], cuts=[len(_LONG_SASL) - 8])
def test_over_long_lines_are_answered_the_same_whatever_the_reads(
    pieces: list[bytes], cuts: list[int]
) -> None:
    _same_whatever_the_reads(b"".join(pieces), cuts)
