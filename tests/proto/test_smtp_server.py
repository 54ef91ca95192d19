"""The SMTP server core without sockets: bytes in, events and replies out.

``Driver`` plays the adapter's part: it feeds bytes, answers each decision the way
``net/smtp_server.py`` would (unknown users get 550 5.1.1, wrong passwords 535 5.7.8), and keeps
what it saw, so that each test reads as a transcript.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from todoku.proto.errors import LocalProtocolError
from todoku.proto.smtp import codes, server
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import (
    DECISIONS,
    NEED_DATA,
    PAUSED,
    AuthRequest,
    Closed,
    DataChunk,
    DataCommand,
    EndOfData,
    Hello,
    MailFrom,
    MessageTooBig,
    RcptTo,
    Reset,
    StartTLS,
)
from todoku.proto.smtp.server import ServerConnection, SessionSettings, State

T = TypeVar("T")
PASSWORD = "secret"
MX = SessionSettings(hostname="mx.example.test", max_message_size=10_000)
SUBMISSION = replace(MX, tls_available=True, auth_enabled=True, require_tls=True, require_auth=True)


def adapter_answer(event: object) -> Reply:
    """What the real adapter answers, reduced to what the core's tests need."""
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
class Driver:
    conn: ServerConnection
    answer: Callable[[object], Reply] = adapter_answer
    events: list[object] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    content: bytearray = field(default_factory=bytearray)
    paused: bool = False

    def feed(self, *pieces: bytes) -> bytes:
        """Feed each piece as one read, run the core dry after each; return all output."""
        out = bytearray()
        for piece in pieces:
            self.conn.receive_data(piece)
            self.pump()
            out += self.conn.data_to_send()
        return bytes(out)

    def pump(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            if event is PAUSED:
                self.paused = True
                return
            self.events.append(event)
            if isinstance(event, DataChunk):
                self.content += event.data
            elif isinstance(event, EndOfData):
                self.messages.append(bytes(self.content))
                self.content.clear()
            elif isinstance(event, (Reset, MessageTooBig)):
                self.content.clear()
            if isinstance(event, DECISIONS):
                self.conn.reply(self.answer(event))
            if isinstance(event, Closed):
                return

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]


def session(
    settings: SessionSettings = MX, answer: Callable[[object], Reply] = adapter_answer
) -> Driver:
    driver = Driver(ServerConnection(settings), answer)
    greeting = driver.conn.data_to_send()
    assert greeting == b"220 mx.example.test ESMTP todoku\r\n"  # RFC 2034 §3: no enhanced code
    return driver


def replies(data: bytes) -> list[str]:
    """Complete replies as one string each: multi-line replies joined with ' | '."""
    out: list[str] = []
    pending: list[str] = []
    for line in data.decode("utf-8").split("\r\n")[:-1]:
        pending.append(line[4:])
        if line[3] == " ":
            out.append(line[:3] + " " + " | ".join(pending))
            pending = []
    assert not pending, f"unfinished reply in {data!r}"
    return out


def codes_of(data: bytes) -> list[str]:
    """Code and enhanced code of each reply, e.g. '250 2.1.0' (just '354' when it has none)."""
    out = []
    for reply in replies(data):
        code, _, rest = reply.partition(" ")
        enhanced = rest.split(" ")[0]
        out.append(
            f"{code} {enhanced}" if re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", enhanced) else code
        )
    return out


def ready(settings: SessionSettings = MX, **kw: Callable[[object], Reply]) -> Driver:
    driver = session(settings, **kw)
    driver.feed(b"EHLO client.example.test\r\n")
    return driver


def in_transaction(settings: SessionSettings = MX) -> Driver:
    driver = ready(settings)
    out = driver.feed(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n")
    assert codes_of(out) == ["250 2.1.0", "250 2.1.5"]
    return driver


def send_message(wire: bytes, reads: Iterable[bytes] | None = None) -> Driver:
    """Run DATA with ``wire`` (content plus terminator) fed as ``reads`` (default: one read)."""
    driver = in_transaction()
    assert codes_of(driver.feed(b"DATA\r\n")) == ["354"]
    driver.feed(*(reads if reads is not None else [wire]))
    return driver


# ------------------------------------------------------------------ replies the issue lists


def test_sequence_errors_are_503_and_the_session_goes_on() -> None:
    driver = session()
    assert replies(driver.feed(b"MAIL FROM:<a@example.test>\r\n")) == [
        "503 5.5.1 Error: send HELO/EHLO first"
    ]
    driver.feed(b"EHLO c.test\r\n")
    out = driver.feed(
        b"RCPT TO:<b@example.test>\r\nDATA\r\nMAIL FROM:<a@example.test>\r\n"
        b"MAIL FROM:<a@example.test>\r\nNOOP\r\n"
    )
    assert replies(out) == [
        "503 5.5.1 Error: need MAIL command",
        "503 5.5.1 Error: need RCPT command",
        "250 2.1.0 Ok",
        "503 5.5.1 Error: nested MAIL command",
        "250 2.0.0 Ok",
    ]
    assert driver.conn.error_count == 4


def test_unknown_command_and_overlong_line_get_500_and_session_goes_on() -> None:
    driver = ready()
    out = driver.feed(b"FROB x\r\n", b"NOOP " + b"x" * 600 + b"\r\n", b"NOOP\r\n")
    assert replies(out) == [
        "500 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: line too long",
        "250 2.0.0 Ok",
    ]


def test_command_line_limit_is_512_octets_including_crlf() -> None:
    driver = ready()
    exactly = b"NOOP " + b"x" * (512 - 7) + b"\r\n"
    one_more = b"NOOP " + b"x" * (512 - 6) + b"\r\n"
    assert len(exactly) == 512
    assert codes_of(driver.feed(exactly, one_more)) == ["250 2.0.0", "500 5.5.2"]


def test_endless_line_is_dropped_while_it_arrives_and_answered_once() -> None:
    driver = ready()
    pieces = [b"X" * 8192 for _ in range(10)] + [b"\r\nNOOP\r\n"]
    out = driver.feed(*pieces)
    assert replies(out) == ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"]
    assert driver.conn.buffered < 20_000  # the core did not keep the 80 kB line


@pytest.mark.parametrize(
    "name",
    [
        b"c\x1b[31m.test",  # ESC: terminal sequences in the Received field and its readers
        b"c\x07.test",
        b"c\x7f.test",
        b"c\x0b.test",  # VT and FF end a line for str.splitlines()
        b"c\x0c.test",
        "c\u0085.test".encode(),  # NEL, U+2028, U+2029: line ends for Unicode readers
        "c\u2028.test".encode(),
        "c\u2029.test".encode(),
        "c\u202e.test".encode(),  # a bidirectional override reorders what is shown
    ],
)
def test_hello_names_with_control_characters_are_refused(name: bytes) -> None:
    """Issue 12 attack pass: the EHLO name is copied into the Received field of every message
    the client sends; control characters there reached header readers and terminals verbatim."""
    driver = session()
    for verb in (b"EHLO ", b"HELO "):
        out = driver.feed(verb + name + b"\r\n")
        assert codes_of(out) == ["501 5.5.4"]
        assert driver.conn.helo_name is None
    assert codes_of(driver.feed(b"EHLO c.test\r\n"))[0] == "250"


def test_syntax_errors_get_501_5_5_4() -> None:
    driver = session()
    out = driver.feed(b"EHLO\r\n", b"HELO a b\r\n")
    assert codes_of(out) == ["501 5.5.4", "501 5.5.4"]
    driver.feed(b"EHLO c.test\r\n")
    out = driver.feed(
        b"MAIL TO:<a@example.test>\r\n",
        b"MAIL FROM:<a@example.test> SIZE=big\r\n",
        b"MAIL FROM:<a@example.test> BODY\r\n",
        b"RSET now\r\n",
        b"VRFY\r\n",
    )
    assert codes_of(out) == ["501 5.5.4", "501 5.5.4", "555 5.5.4", "501 5.5.4", "501 5.5.4"]


def test_bad_address_syntax_names_sender_or_recipient() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<a@@b>\r\n")
    assert codes_of(out) == ["501 5.1.7"]
    assert "Bad sender address syntax" in replies(out)[0]
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed(b"RCPT TO:<b@exa mple.test>\r\n", b"RCPT TO:<>\r\n")
    assert codes_of(out) == ["501 5.1.3", "501 5.1.3"]


def test_submission_wants_starttls_first_then_auth() -> None:
    driver = ready(SUBMISSION)
    plain = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()
    out = driver.feed(f"AUTH PLAIN {plain}\r\n".encode(), b"MAIL FROM:<alice@example.test>\r\n")
    assert replies(out) == [
        "530 5.7.0 Must issue a STARTTLS command first",
        "530 5.7.0 Must issue a STARTTLS command first",
    ]
    driver.feed(b"STARTTLS\r\n")
    driver.conn.tls_started()
    driver.feed(b"EHLO c.test\r\n")
    out = driver.feed(b"MAIL FROM:<alice@example.test>\r\n")
    assert replies(out) == ["530 5.7.0 Authentication required"]
    out = driver.feed(f"AUTH PLAIN {plain}\r\nMAIL FROM:<alice@example.test>\r\n".encode())
    assert codes_of(out) == ["235 2.7.0", "250 2.1.0"]
    assert driver.conn.authenticated_user == "alice@example.test"


def test_declared_size_over_limit_gets_552() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<a@example.test> SIZE=10001\r\n")
    assert replies(out) == ["552 5.3.4 Message size exceeds fixed limit"]
    assert codes_of(driver.feed(b"MAIL FROM:<a@example.test> SIZE=10000\r\n")) == ["250 2.1.0"]


def test_oversized_data_gets_552_at_its_end_and_the_session_goes_on() -> None:
    body = b"".join(b"line %05d of a message that is far too long\r\n" % i for i in range(400))
    driver = send_message(
        body + b".\r\nNOOP\r\n", reads=[body[:5000], body[5000:], b".\r\nNOOP\r\n"]
    )
    out = driver.conn.data_to_send()  # nothing left: feed() collected it
    assert out == b""
    assert len(driver.of(MessageTooBig)) == 1
    assert driver.of(EndOfData) == []
    assert driver.messages == []
    assert driver.conn.state is State.READY


def test_oversized_data_replies_in_order() -> None:
    driver = in_transaction()
    body = b"x" * 70 + b"\r\n"
    out = driver.feed(b"DATA\r\n" + body * 200 + b".\r\nNOOP\r\n")
    assert replies(out)[1:] == [
        "552 5.3.4 Message size exceeds fixed limit",
        "250 2.0.0 Ok",
    ]
    assert driver.conn.data_to_send() == b""
    # The data never reached the driver beyond the limit.
    delivered = sum(len(e.data) for e in driver.of(DataChunk))
    assert delivered <= MX.max_message_size


def test_unknown_parameters_get_555() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<a@example.test> FROB=1\r\n")
    assert replies(out) == ["555 5.5.4 Unsupported option: FROB"]
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed(b"RCPT TO:<b@example.test> XYZZY\r\n")
    assert replies(out) == ["555 5.5.4 Unsupported option: XYZZY"]


def test_data_without_valid_recipients_gets_554() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<unknown@example.test>\r\nDATA\r\n")
    assert replies(out) == [
        "250 2.1.0 Ok",
        (
            "550 5.1.1 <unknown@example.test>: Recipient address rejected: "
            "User unknown in local recipient table"
        ),
        "554 5.5.1 Error: no valid recipients",
    ]
    assert driver.of(DataCommand) == []


def test_too_many_errors_end_the_session_with_421() -> None:
    driver = ready(replace(MX, max_errors=3))
    out = driver.feed(b"FROB\r\nFROB\r\nFROB\r\nNOOP\r\n")
    assert codes_of(out) == ["500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"]
    assert driver.events[-1] == Closed(by_peer=False)
    assert driver.conn.closing
    assert driver.feed(b"NOOP\r\n") == b""


def test_too_many_errors_while_skipping_a_long_line_reports_closed() -> None:
    driver = ready(replace(MX, max_errors=2))
    driver.feed(b"FROB\r\n")
    out = driver.feed(b"x" * 20_000, b"\r\n")
    assert codes_of(out) == ["500 5.5.2", "421 4.7.0"]
    assert driver.events[-1] == Closed(by_peer=False)


def test_rejections_by_the_driver_count_as_errors() -> None:
    driver = ready(replace(MX, max_errors=2))
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed(b"RCPT TO:<unknown@example.test>\r\nRCPT TO:<unknown@example.test>\r\n")
    assert codes_of(out) == ["550 5.1.1", "550 5.1.1", "421 4.7.0"]


def test_shutdown_says_421_and_closes() -> None:
    driver = ready()
    driver.conn.shutdown()
    assert replies(driver.conn.data_to_send()) == [
        "421 4.3.2 Service shutting down, closing transmission channel"
    ]
    assert driver.conn.next_event() == Closed(by_peer=False)


def test_shutdown_drops_commands_not_yet_answered() -> None:
    driver = ready()
    driver.conn.receive_data(b"MAIL FROM:<a@example.test>\r\n")
    assert isinstance(driver.conn.next_event(), MailFrom)
    driver.conn.shutdown()
    assert codes_of(driver.conn.data_to_send()) == ["421 4.3.2"]
    assert driver.conn.next_event() == Closed(by_peer=False)
    with pytest.raises(LocalProtocolError):
        driver.conn.reply(codes.SENDER_OK)


def test_reply_without_decision_and_event_before_reply_are_driver_bugs() -> None:
    conn = ServerConnection(MX)
    with pytest.raises(LocalProtocolError):
        conn.reply(codes.OK)
    conn.receive_data(b"EHLO c.test\r\nMAIL FROM:<a@example.test>\r\n")
    assert isinstance(conn.next_event(), Hello)
    assert isinstance(conn.next_event(), MailFrom)
    with pytest.raises(LocalProtocolError):
        conn.next_event()


def test_quit_and_peer_close() -> None:
    driver = ready()
    out = driver.feed(b"QUIT\r\nNOOP\r\n")
    assert replies(out) == ["221 2.0.0 mx.example.test closing connection"]
    assert driver.events[-1] == Closed(by_peer=False)
    other = ready()
    other.feed(b"MAIL FROM:<a@example.test>\r\n", b"")
    assert other.events[-1] == Closed(by_peer=True)


def test_peer_closing_inside_data_ends_without_a_message() -> None:
    driver = send_message(b"", reads=[b"Subject: half\r\n\r\nunfinished", b""])
    assert driver.events[-1] == Closed(by_peer=True)
    assert driver.of(EndOfData) == []


def test_bare_cr_or_nul_in_a_command_is_refused() -> None:
    driver = ready()
    out = driver.feed(b"NOOP\rMAIL FROM:<a@example.test>\r\n", b"NO\0OP\r\n")
    assert codes_of(out) == ["500 5.5.2", "500 5.5.2"]
    assert driver.of(MailFrom) == []


def test_other_commands() -> None:
    driver = ready()
    out = driver.feed(b"VRFY bob\r\nEXPN list\r\nHELP\r\nETRN x\r\nRSET\r\nNOOP\r\n")
    assert codes_of(out) == ["252 2.5.2", "502 5.5.1", "214 2.0.0", "502 5.5.1", "250 2.0.0"] + [
        "250 2.0.0"
    ]


def test_helo_gives_a_plain_reply_and_rset_drops_the_transaction() -> None:
    driver = session()
    assert replies(driver.feed(b"HELO c.test\r\n")) == ["250 mx.example.test"]
    out = driver.feed(b"MAIL FROM:<a@example.test>\r\nRSET\r\nRCPT TO:<b@example.test>\r\n")
    assert codes_of(out) == ["250 2.1.0", "250 2.0.0", "503 5.5.1"]
    assert len(driver.of(Reset)) == 1
    assert driver.conn.esmtp is False


# ------------------------------------------------------------------ PIPELINING


def test_pipelined_batch_gets_all_replies_in_order_in_one_buffer() -> None:
    driver = session()
    batch = (
        b"EHLO c.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
        b"RCPT TO:<unknown@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n"
    )
    driver.conn.receive_data(batch)
    driver.pump()
    out = driver.conn.data_to_send()
    assert codes_of(out) == ["250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"]
    out = driver.feed(b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@example.test>\r\nQUIT\r\n")
    assert replies(out) == [
        "250 2.0.0 Ok: queued as Q1",
        "250 2.1.0 Ok",
        "221 2.0.0 mx.example.test closing connection",
    ]
    assert driver.messages == [b"Subject: x\r\n\r\nhi\r\n"]
    recipients = [str(e.recipient) for e in driver.of(RcptTo)]
    assert recipients == ["b@example.test", "unknown@example.test", "c@example.test"]


def test_pipelined_content_is_not_read_as_commands_before_354() -> None:
    refusing = in_transaction()
    refusing.answer = lambda e: codes.STORAGE_FULL if isinstance(e, DataCommand) else codes.OK
    out = refusing.feed(b"DATA\r\nRSET\r\n")
    assert codes_of(out) == ["452 4.3.1", "250 2.0.0"]


# ------------------------------------------------------------------ DATA content


def stuff(content: bytes) -> bytes:
    """What a client sends for ``content`` (CRLF line ends): dot-stuffed plus terminator."""
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    stuffed = b"\r\n".join(
        (b"." + line if line.startswith(b".") else line) for line in content.split(b"\r\n")
    )
    return stuffed + b".\r\n"


TRICKY = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n...\r\n\r\n.\r\nend . \r\n.x"


def run_data(wire: bytes, cuts: Iterable[int] = ()) -> tuple[list[bytes], list[object]]:
    bounds = [0, *sorted(set(cuts)), len(wire)]
    reads = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    driver = send_message(wire, reads)
    return driver.messages, driver.events


def test_dot_unstuffing_at_every_split_offset() -> None:
    wire = stuff(TRICKY) + b"NOOP\r\n"
    expected = TRICKY + b"\r\n"
    for cut in range(1, len(wire)):
        messages, _ = run_data(wire, [cut])
        assert messages == [expected], f"split at {cut}: {wire[:cut]!r} | {wire[cut:]!r}"


def test_terminator_split_into_single_bytes() -> None:
    wire = stuff(b"a\r\n.b") + b"NOOP\r\n"
    messages, events = run_data(wire, range(1, len(wire)))
    assert messages == [b"a\r\n.b\r\n"]
    assert sum(isinstance(e, EndOfData) for e in events) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.sampled_from([b"", b".", b"..", b".a", b"a.", b"x" * 30, b"\xc3\xa9"])),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=6),
)
def test_stuffed_content_round_trips_whatever_the_reads(
    lines: list[bytes], cuts: list[int]
) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    wire = stuff(content)
    messages, _ = run_data(wire, [c for c in cuts if c < len(wire)])
    assert messages == [content]


RAW_PIECES = [b"\r", b"\n", b"\r\n", b".", b"a", b"\r\n.\r", b"\n.\n", b"\r.\r", b"..", b"\r\r\n"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(RAW_PIECES), max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=6),
)
def test_any_content_gives_the_same_result_whatever_the_reads(
    parts: list[bytes], cuts: list[int]
) -> None:
    """Bare CR/LF and dots in any mix: one read or many, the same message and the same count."""
    wire = b"".join(parts) + b"\r\n.\r\nNOOP\r\n"
    whole, whole_events = run_data(wire)
    split, split_events = run_data(wire, [c for c in cuts if c < len(wire)])
    assert split == whole
    bare = [e.bare_newlines for e in whole_events if isinstance(e, EndOfData)]
    assert bare == [e.bare_newlines for e in split_events if isinstance(e, EndOfData)]
    for message in whole:
        # Stored content has only CRLF line ends, so later relaying cannot be ambiguous.
        assert message.count(b"\r") == message.count(b"\n") == message.count(b"\r\n")


@pytest.mark.parametrize("pattern", [b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\n.\n", b"\r.\r\n"])
def test_smuggling_patterns_never_end_the_message(pattern: bytes) -> None:
    """CVE-2023-51764: a non-standard end of data must not let a second message through."""
    smuggled = (
        b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\n"
        b"DATA\r\nSubject: forged\r\n\r\nsmuggled\r\n"
    )
    wire = b"Subject: real\r\n\r\nbody" + pattern + smuggled + b".\r\nNOOP\r\n"
    for cuts in ([], [len(b"Subject: real\r\n\r\nbody") + 1], range(20, len(wire), 7)):
        messages, events = run_data(wire, cuts)
        assert len(messages) == 1
        assert b"MAIL FROM:<admin@example.test>\r\n" in messages[0]
        senders = [str(e.sender) for e in events if isinstance(e, MailFrom)]
        assert senders == ["alice@example.test"]  # only the real one, from in_transaction()
        ends = [e for e in events if isinstance(e, EndOfData)]
        assert ends[0].bare_newlines >= 1
        message = messages[0]
        assert message.count(b"\r") == message.count(b"\n") == message.count(b"\r\n")


def test_bare_lf_message_is_normalised_to_crlf() -> None:
    messages, events = run_data(b"Subject: unix\n\nline one\nline two\r\n.\r\n")
    assert messages == [b"Subject: unix\r\n\r\nline one\r\nline two\r\n"]
    assert [e.bare_newlines for e in events if isinstance(e, EndOfData)] == [3]


def test_one_megabyte_line_is_carried_whole() -> None:
    long_line = bytes(range(33, 127)) * (1024 * 1024 // 94)
    content = b"Subject: long\r\n\r\n" + long_line + b"\r\nafter\r\n"
    settings_big = replace(MX, max_message_size=4 * 1024 * 1024)
    driver = ready(settings_big)
    driver.feed(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    wire = stuff(content)
    reads = [wire[i : i + 65_000] for i in range(0, len(wire), 65_000)]
    out = driver.feed(*reads)
    assert codes_of(out) == ["250 2.0.0"]
    assert driver.messages == [content]
    biggest = max(len(e.data) for e in driver.of(DataChunk))
    assert biggest < 200_000  # passed on in pieces while it arrived, not held to its end


def test_consumed_input_is_not_kept() -> None:
    """Reads that end mid-line must not make the core keep the whole message in memory."""
    driver = ready(replace(MX, max_message_size=10_000_000))
    driver.feed(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    line = b"y" * 99 + b"\r\n"
    for _ in range(300):
        driver.feed(line * 50 + b"half a li")
        driver.feed(b"ne\r\n")
        assert driver.conn.buffered < 20_000
    assert codes_of(driver.feed(b".\r\n")) == ["250 2.0.0"]


# ------------------------------------------------------------------ 8-bit and UTF-8 addresses


def test_utf8_sender_needs_smtputf8() -> None:
    driver = ready()
    sender = "jösé@例え.test".encode()
    out = driver.feed(b"MAIL FROM:<" + sender + b">\r\n")
    assert codes_of(out) == ["553 5.6.7"]
    out = driver.feed(b"MAIL FROM:<" + sender + b"> SMTPUTF8\r\nRCPT TO:<" + sender + b">\r\n")
    assert codes_of(out) == ["250 2.1.0", "250 2.1.5"]
    mail = driver.of(MailFrom)[0]
    assert mail.smtputf8 is True
    assert mail.sender is not None
    assert (mail.sender.local, mail.sender.domain) == ("jösé", "例え.test")


def test_utf8_recipient_without_smtputf8_transaction_gets_553() -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed("RCPT TO:<ünïcode@example.test>\r\n".encode())
    assert replies(out) == ["553 5.6.7 Error: SMTPUTF8 support is required for this address"]


def test_smtputf8_lasts_one_transaction_only() -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<a@example.test> SMTPUTF8\r\nRSET\r\nMAIL FROM:<a@example.test>\r\n")
    out = driver.feed("RCPT TO:<ü@example.test>\r\n".encode())
    assert codes_of(out) == ["553 5.6.7"]


def test_8bit_octets_that_are_not_utf8_are_a_syntax_error() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<j\xf6rg@example.test> SMTPUTF8\r\nNOOP\r\n")
    assert codes_of(out) == ["501 5.5.4", "250 2.0.0"]
    assert driver.of(MailFrom) == []


def test_fullwidth_domain_is_refused_even_with_smtputf8() -> None:
    driver = ready()
    out = driver.feed("MAIL FROM:<a@ｅｘａｍｐｌｅ.test> SMTPUTF8\r\n".encode())
    assert codes_of(out) == ["501 5.1.7"]


def test_8bitmime_body_parameter() -> None:
    driver = ready()
    out = driver.feed(b"MAIL FROM:<a@example.test> BODY=8BITMIME\r\n")
    assert codes_of(out) == ["250 2.1.0"]
    assert driver.of(MailFrom)[0].body == "8BITMIME"
    messages, _ = run_data("Subject: é\r\n\r\nくらい\r\n.\r\n".encode())
    assert messages == ["Subject: é\r\n\r\nくらい\r\n".encode()]


# ------------------------------------------------------------------ STARTTLS


def test_starttls_drops_pipelined_cleartext_and_resets_the_session() -> None:
    """CVE-2011-0411: commands sent with STARTTLS in one packet must not run after the handshake."""
    settings_tls = replace(MX, tls_available=True, auth_enabled=True, auth_requires_tls=False)
    driver = ready(settings_tls)
    plain = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode())
    driver.feed(b"AUTH PLAIN " + plain + b"\r\n")
    assert driver.conn.authenticated_user == "alice@example.test"
    out = driver.feed(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n")
    assert replies(out) == ["220 2.0.0 Ready to start TLS"]
    assert driver.paused and isinstance(driver.events[-1], StartTLS)
    assert driver.feed(b"RCPT TO:<x@example.test>\r\n") == b""  # still cleartext: ignored
    driver.conn.tls_started()
    driver.paused = False
    assert driver.conn.tls_active
    assert driver.conn.authenticated_user is None and driver.conn.helo_name is None
    out = driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    assert codes_of(out) == ["503 5.5.1"]  # RFC 3207 §4.2: EHLO again first
    assert driver.of(MailFrom) == [] and driver.of(RcptTo) == []
    out = driver.feed(b"STARTTLS\r\n")
    assert codes_of(out) == ["503 5.5.1"]
    driver.feed(b"EHLO c.test\r\n")
    assert codes_of(driver.feed(b"STARTTLS\r\n")) == ["554 5.5.1"]


def test_starttls_not_offered_or_with_argument() -> None:
    driver = ready()
    assert codes_of(driver.feed(b"STARTTLS\r\n")) == ["502 5.5.1"]
    tls = ready(replace(MX, tls_available=True))
    assert codes_of(tls.feed(b"STARTTLS now\r\n")) == ["501 5.5.4"]
    assert codes_of(tls.feed(b"MAIL FROM:<a@example.test>\r\nSTARTTLS\r\n")) == [
        "250 2.1.0",
        "503 5.5.1",
    ]


def test_tls_started_without_starttls_is_a_driver_bug() -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection(MX).tls_started()


# ------------------------------------------------------------------ EHLO capabilities


def ehlo_keywords(driver: Driver) -> list[str]:
    reply = replies(driver.feed(b"EHLO c.test\r\n"))[0]
    return [line.split(" ")[0] for line in reply[4:].split(" | ")[1:]]


def test_ehlo_capabilities_before_and_after_tls_and_auth() -> None:
    driver = ready(SUBMISSION)
    before = ehlo_keywords(driver)
    common = [
        "PIPELINING",
        "SIZE",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ]
    assert set(common) <= set(before)
    assert "STARTTLS" in before and "AUTH" not in before
    driver.feed(b"STARTTLS\r\n")
    driver.conn.tls_started()
    after_tls = ehlo_keywords(driver)
    assert "STARTTLS" not in after_tls and "AUTH" in after_tls
    assert set(common) <= set(after_tls)
    assert "AUTH PLAIN LOGIN" in replies(driver.feed(b"EHLO c.test\r\n"))[0]
    plain = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode())
    driver.feed(b"AUTH PLAIN " + plain + b"\r\n")
    after_auth = ehlo_keywords(driver)
    assert "AUTH" not in after_auth and set(common) <= set(after_auth)
    assert driver.conn.authenticated_user == "alice@example.test"  # EHLO keeps the login


def test_ehlo_size_shows_the_limit() -> None:
    reply = replies(session().feed(b"EHLO c.test\r\n"))[0]
    assert "SIZE 10000" in reply
    assert reply.startswith("250 mx.example.test | ")


# ------------------------------------------------------------------ AUTH


def authing(mech: bytes = b"") -> Driver:
    return ready(replace(SUBMISSION, tls_active=True))


def test_auth_plain_with_initial_response() -> None:
    driver = authing()
    plain = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode())
    out = driver.feed(b"AUTH PLAIN " + plain + b"\r\n")
    assert replies(out) == ["235 2.7.0 Authentication successful"]
    request = driver.of(AuthRequest)[0]
    assert request.username == "alice@example.test" and request.mechanism == "PLAIN"
    assert "secret" not in repr(request)
    assert codes_of(driver.feed(b"AUTH PLAIN " + plain + b"\r\n")) == ["503 5.5.1"]


def test_auth_plain_empty_challenge_then_response_and_bad_password() -> None:
    driver = authing()
    assert driver.feed(b"AUTH PLAIN\r\n") == b"334 \r\n"
    wrong = base64.b64encode(b"\0alice@example.test\0wrong")
    out = driver.feed(wrong + b"\r\n")
    assert replies(out) == ["535 5.7.8 Authentication credentials invalid"]
    assert driver.conn.authenticated_user is None
    assert codes_of(driver.feed(b"NOOP\r\n")) == ["250 2.0.0"]


def test_auth_login_exchange() -> None:
    driver = authing()
    assert driver.feed(b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"  # "Username:"
    out = driver.feed(base64.b64encode(b"alice@example.test") + b"\r\n")
    assert out == b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
    out = driver.feed(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert codes_of(out) == ["235 2.7.0"]
    request = driver.of(AuthRequest)[0]
    assert (request.mechanism, request.username) == ("LOGIN", "alice@example.test")


def test_auth_login_with_initial_username() -> None:
    driver = authing()
    out = driver.feed(b"AUTH LOGIN " + base64.b64encode(b"alice@example.test") + b"\r\n")
    assert out == b"334 UGFzc3dvcmQ6\r\n"
    assert codes_of(driver.feed(base64.b64encode(PASSWORD.encode()) + b"\r\n")) == ["235 2.7.0"]


def test_auth_cancel_with_star() -> None:
    driver = authing()
    driver.feed(b"AUTH LOGIN\r\n")
    out = driver.feed(b"*\r\n")
    assert replies(out) == ["501 5.7.0 Authentication aborted"]
    assert driver.conn.state is State.READY and driver.of(AuthRequest) == []
    assert codes_of(driver.feed(b"NOOP\r\n")) == ["250 2.0.0"]


def test_auth_bad_base64_bad_mechanism_and_bad_plain() -> None:
    driver = authing()
    out = driver.feed(b"AUTH PLAIN !!notbase64\r\n")
    assert codes_of(out) == ["501 5.5.2"]
    driver.feed(b"AUTH LOGIN\r\n")
    assert codes_of(driver.feed(b"not base64 at all\r\n")) == ["501 5.5.2"]
    assert codes_of(driver.feed(b"AUTH CRAM-MD5\r\n")) == ["504 5.5.4"]
    assert codes_of(driver.feed(b"AUTH\r\n")) == ["501 5.5.4"]
    no_user = base64.b64encode(b"\0\0pw")
    assert codes_of(driver.feed(b"AUTH PLAIN " + no_user + b"\r\n")) == ["501 5.5.2"]
    assert driver.of(AuthRequest) == []
    assert codes_of(driver.feed(b"NOOP\r\n")) == ["250 2.0.0"]


def test_auth_not_enabled_on_mx_and_not_inside_a_transaction() -> None:
    assert codes_of(ready().feed(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]
    driver = authing()
    driver.conn.authenticated_user = None
    out = driver.feed(b"AUTH PLAIN\r\n*\r\n")
    assert codes_of(out) == ["334", "501 5.7.0"]


def test_auth_identity_from_driver_is_kept() -> None:
    driver = authing()
    driver.conn.receive_data(
        b"AUTH PLAIN " + base64.b64encode(b"\0Alice@Example.Test\0x") + b"\r\n"
    )
    assert isinstance(driver.conn.next_event(), AuthRequest)
    driver.conn.reply(codes.AUTH_OK, identity="alice@example.test")
    assert driver.conn.authenticated_user == "alice@example.test"


# ------------------------------------------------------------------ DSN parameters (RFC 3461)


def test_dsn_parameters_are_parsed() -> None:
    driver = ready()
    out = driver.feed(
        b"MAIL FROM:<a@example.test> RET=hdrs ENVID=QQ+2B314\r\n"
        b"RCPT TO:<b@example.test> NOTIFY=success,FAILURE ORCPT=rfc822;b+40example.test\r\n"
        b"RCPT TO:<c@example.test> NOTIFY=NEVER\r\n"
    )
    assert codes_of(out) == ["250 2.1.0", "250 2.1.5", "250 2.1.5"]
    mail = driver.of(MailFrom)[0]
    assert (mail.ret, mail.envid) == ("HDRS", "QQ+314")
    first, second = driver.of(RcptTo)
    assert first.notify == ("SUCCESS", "FAILURE")
    assert first.orcpt == "rfc822;b@example.test"
    assert second.notify == ("NEVER",) and second.orcpt is None


@pytest.mark.parametrize(
    "command",
    [
        b"MAIL FROM:<a@example.test> RET=BODY",
        b"MAIL FROM:<a@example.test> RET",
        b"MAIL FROM:<a@example.test> ENVID=bad+ZZ",
        b"MAIL FROM:<a@example.test> ENVID=" + b"x" * 101,
        b"MAIL FROM:<a@example.test> RET=FULL RET=HDRS",
        b"MAIL FROM:<a@example.test> SMTPUTF8=yes",
        b"MAIL FROM:<a@example.test> SIZE=-1",
        b"MAIL FROM:<a@example.test> =x",
    ],
)
def test_invalid_mail_dsn_parameters_are_refused(command: bytes) -> None:
    driver = ready()
    assert codes_of(driver.feed(command + b"\r\n")) == ["501 5.5.4"]
    assert driver.of(MailFrom) == []


@pytest.mark.parametrize(
    "params",
    [
        b"NOTIFY=NEVER,SUCCESS",
        b"NOTIFY=SOMETIMES",
        b"NOTIFY=SUCCESS,",
        b"NOTIFY",
        b"ORCPT=b@example.test",
        b"ORCPT=;b@example.test",
        b"ORCPT=rfc822;",
        b"ORCPT=rfc822;bad+G1",
        b"ORCPT=rfc822;" + b"x" * 500,
        # RFC 6533 §3: utf-8-addr-xtext escapes \\x{HEX} that name a control character
        # (issue 12 attack pass: ESC, NUL, CR and LF reached Original-Recipient this way)
        b"ORCPT=utf-8;a\\x{1B}[31m@example.test",
        b"ORCPT=utf-8;a\\x{0}@example.test",
        b"ORCPT=utf-8;a\\x{D}\\x{A}X-Injected:\\x{20}yes@example.test",
        b"ORCPT=utf-8;a\\x{2028}@example.test",
        b"ORCPT=UTF-8;a\\x{9b}@example.test",
    ],
)
def test_invalid_rcpt_dsn_parameters_are_refused(params: bytes) -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    assert codes_of(driver.feed(b"RCPT TO:<b@example.test> " + params + b"\r\n")) == ["501 5.5.4"]
    assert driver.of(RcptTo) == []


def test_utf8_orcpt_with_printable_escapes_is_kept() -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed(b"RCPT TO:<b@example.test> ORCPT=utf-8;j\\x{E9}r\\x{F4}me@example.test\r\n")
    assert codes_of(out) == ["250 2.1.5"]
    assert driver.of(RcptTo)[0].orcpt == "utf-8;j\\x{E9}r\\x{F4}me@example.test"


def test_too_many_recipients_gets_452() -> None:
    driver = ready(replace(MX, max_recipients=2))
    driver.feed(b"MAIL FROM:<a@example.test>\r\n")
    out = driver.feed(b"RCPT TO:<b@example.test>\r\n" * 3)
    assert codes_of(out) == ["250 2.1.5", "250 2.1.5", "452 4.5.3"]


def test_postmaster_without_domain_is_accepted() -> None:
    driver = ready()
    driver.feed(b"MAIL FROM:<>\r\n")
    assert codes_of(driver.feed(b"RCPT TO:<Postmaster>\r\n")) == ["250 2.1.5"]
    assert driver.of(MailFrom)[0].sender is None
    assert driver.of(RcptTo)[0].recipient.domain == ""


# ------------------------------------------------------------------ anything in, a reply out

_COMMANDS = [
    b"EHLO c.test\r\n",
    b"HELO c.test\r\n",
    b"MAIL FROM:<a@example.test>\r\n",
    b"MAIL FROM:<a@example.test> SIZE=99999 RET=FULL\r\n",
    b"RCPT TO:<b@example.test>\r\n",
    b"RCPT TO:<unknown@example.test> NOTIFY=NEVER\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"*\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r",
    b"\n",
    b"VRFY x\r\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(st.sampled_from(_COMMANDS), st.binary(max_size=30)), max_size=25),
    tls_started=st.booleans(),
)
def test_any_input_gets_well_formed_replies_and_never_raises(
    pieces: list[bytes], tls_started: bool
) -> None:
    settings_all = replace(MX, tls_available=True, auth_enabled=True, auth_requires_tls=False)
    driver = Driver(ServerConnection(settings_all))
    out = driver.conn.data_to_send()
    for piece in pieces:
        out += driver.feed(piece)
        if driver.paused and tls_started:
            driver.conn.tls_started()
            driver.paused = False
    out += driver.feed(b"")
    assert isinstance(driver.events[-1], Closed) or driver.paused
    for reply in replies(out):
        code = reply[:3]
        assert code.isdigit() and code[0] in "2345"
        if code not in ("220", "250", "334", "354") or reply.startswith("250 2."):
            # RFC 2034 §3: every reply but the greeting, EHLO/HELO, 334 and 354 has one.
            assert re.match(r"^\d{3} [245]\.\d{1,3}\.\d{1,3} ", reply), reply


# ------------------------------------------------------ line limits and reply lines (issue 12)

_SASL_CAP = server.SASL_LINE_LIMIT


def _cut_reads(data: bytes, how: str) -> list[bytes]:
    """``data`` in one read, cut before its last 8 octets, or cut every 1000 octets."""
    if how == "one read":
        return [data]
    if how == "last 8 apart":
        return [data[:-8], data[-8:]]
    return [data[i : i + 1000] for i in range(0, len(data), 1000)]


READS = ["one read", "last 8 apart", "1000-octet reads"]


@pytest.mark.parametrize("how", READS)
def test_over_long_sasl_response_ends_the_exchange_however_it_is_read(how: str) -> None:
    # RFC 4954 §4, §6: a response longer than the server takes ends AUTH with 500 5.5.6; the
    # NOOP after it is a command again, not a SASL response.
    driver = authing()
    assert driver.feed(b"AUTH PLAIN\r\n") == b"334 \r\n"
    out = driver.feed(*_cut_reads(b"A" * (_SASL_CAP + 1) + b"\r\nNOOP\r\n", how))
    assert replies(out) == ["500 5.5.6 Authentication Exchange line is too long", "250 2.0.0 Ok"]
    assert driver.conn.state is State.READY and driver.of(AuthRequest) == []


@pytest.mark.parametrize("how", READS)
def test_sasl_response_of_the_largest_size_is_read_however_it_arrives(how: str) -> None:
    # RFC 4954 §4: a server MUST take responses of 12288 octets; the line adds its CRLF. This
    # one decodes to NULs, which PLAIN refuses (501), rather than being cut as too long (500).
    driver = authing()
    driver.feed(b"AUTH PLAIN\r\n")
    out = driver.feed(*_cut_reads(b"A" * _SASL_CAP + b"\r\nNOOP\r\n", how))
    assert codes_of(out) == ["501 5.5.2", "250 2.0.0"]


@pytest.mark.parametrize("how", READS)
def test_over_long_command_line_is_answered_once_however_it_is_read(how: str) -> None:
    driver = ready()
    out = driver.feed(*_cut_reads(b"NOOP " + b"x" * 13_000 + b"\r\nNOOP\r\n", how))
    assert replies(out) == ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"]


def test_refused_address_is_quoted_shortened_within_512_octets() -> None:
    # RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; the argument is quoted in part.
    driver = ready()
    out = driver.feed(b"MAIL FROM:<" + b"a" * 600 + b">\r\n")
    [line] = out.split(b"\r\n")[:-1]
    assert len(line) + 2 <= 512
    assert line.startswith(b"501 5.1.7 <" + b"a" * 50) and b"a..." in line


def test_the_renderer_cuts_every_reply_line_to_512_octets() -> None:
    reply = Reply(550, "5.1.1", "\n".join(["x" * 1000, "short", "\u00e9" * 600]))
    lines = reply.to_bytes().split(b"\r\n")
    assert lines[-1] == b""
    assert [len(line) + 2 for line in lines[:-1]] == [512, 17, 511]
    assert lines[0].endswith(b"x...") and lines[1] == b"550-5.1.1 short"
    assert lines[2].decode("utf-8").endswith("\u00e9...")  # cut between characters, not inside
    assert Reply(250, "", "y" * 510).to_bytes() == b"250 " + b"y" * 503 + b"...\r\n"
