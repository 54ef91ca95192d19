"""CHUNKING / BDAT (RFC 3030) in the SMTP server core, driven like the real adapter drives it."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proto.test_smtp_server import (
    MX,
    Driver,
    codes_of,
    in_transaction,
    ready,
    replies,
)
from todoku.proto.errors import LocalProtocolError
from todoku.proto.smtp import codes
from todoku.proto.smtp.events import (
    DataChunk,
    DataCommand,
    EndOfData,
    MailFrom,
    MessageTooBig,
    Reset,
)
from todoku.proto.smtp.server import ServerConnection, State

ENVELOPE = b"EHLO c.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"


def bdat(content: bytes, last: bool = True) -> bytes:
    return b"BDAT %d%s\r\n" % (len(content), b" LAST" if last else b"") + content


def test_chunking_is_advertised() -> None:
    reply = replies(ready().feed(b"EHLO c.test\r\n"))[0]
    assert " | CHUNKING" in reply


def test_single_last_chunk() -> None:
    driver = in_transaction()
    content = b"Subject: one\r\n\r\nbody\r\n"
    out = driver.feed(bdat(content))
    assert replies(out) == ["250 2.0.0 Ok: queued as Q1"]  # no 354 for BDAT (RFC 3030 §2)
    assert driver.messages == [content]
    assert len(driver.of(DataCommand)) == 1
    assert driver.of(EndOfData)[0].size == len(content)
    assert driver.conn.state is State.READY


def test_several_chunks_get_250_each_and_one_decision() -> None:
    driver = in_transaction()
    chunks = [b"Subject: many\r\n", b"\r\n.not stuffed\r\n", b".\r\n", b"end\r\n"]
    out = driver.feed(bdat(chunks[0], False), bdat(chunks[1], False), bdat(chunks[2], False))
    assert replies(out) == [
        "250 2.0.0 Ok: 15 octets received",
        "250 2.0.0 Ok: 16 octets received",
        "250 2.0.0 Ok: 3 octets received",
    ]
    out = driver.feed(bdat(chunks[3]))
    assert codes_of(out) == ["250 2.0.0"]
    assert driver.messages == [b"".join(chunks)]  # dots are content: no unstuffing, no end
    assert len(driver.of(DataCommand)) == 1


def test_pipelined_chunks_split_at_every_offset() -> None:
    content = [b"Subject: pipe\r", b"\n\r\nline\r\n.\r\n", b"", b"tail\n"]
    wire = (
        ENVELOPE
        + bdat(content[0], False)
        + bdat(content[1], False)
        + bdat(content[2], False)
        + bdat(content[3])
        + b"MAIL FROM:<a@example.test>\r\nQUIT\r\n"
    )
    expected_replies = [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.0.0 Ok: 14 octets received",
        "250 2.0.0 Ok: 12 octets received",
        "250 2.0.0 Ok: 0 octets received",
        "250 2.0.0 Ok: queued as Q1",
        "250 2.1.0 Ok",
        "221 2.0.0 mx.example.test closing connection",
    ]
    expected = b"Subject: pipe\r\n\r\nline\r\n.\r\ntail\r\n"  # bare LF at the end normalised
    for cut in range(1, len(wire)):
        driver = Driver(ServerConnection(MX))
        driver.conn.data_to_send()
        out = driver.feed(wire[:cut], wire[cut:])
        assert replies(out)[1:] == expected_replies, f"split at {cut}"
        assert driver.messages == [expected], f"split at {cut}"
        assert [e.bare_newlines for e in driver.of(EndOfData)] == [1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.binary(max_size=40), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=1, max_value=300), max_size=8),
)
def test_any_chunks_any_reads_same_normalised_content(chunks: list[bytes], cuts: list[int]) -> None:
    wire = ENVELOPE + b"".join(bdat(c, False) for c in chunks[:-1]) + bdat(chunks[-1]) + b"NOOP\r\n"
    bounds = [0, *sorted({c for c in cuts if c < len(wire)}), len(wire)]
    driver = Driver(ServerConnection(replace(MX, max_message_size=100_000)))
    driver.feed(*[wire[a:b] for a, b in itertools.pairwise(bounds)])
    raw = b"".join(chunks)
    # The same normalisation DATA applies: bare CR and bare LF each become CRLF.
    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    assert driver.messages == [expected]
    assert driver.of(EndOfData)[0].size == len(expected)


def test_crlf_split_between_chunks_is_not_bare() -> None:
    driver = in_transaction()
    driver.feed(bdat(b"a\r", False), bdat(b"\nb\r", False), bdat(b"", True))
    assert driver.messages == [b"a\r\nb\r\n"]
    assert driver.of(EndOfData)[0].bare_newlines == 1


def test_bdat_zero_last_is_a_valid_end() -> None:
    driver = in_transaction()
    out = driver.feed(b"BDAT 0 LAST\r\n")
    assert codes_of(out) == ["250 2.0.0"]
    assert driver.messages == [b""]
    assert driver.of(EndOfData)[0].size == 0


def test_refused_first_chunk_is_skipped_and_fails_the_transaction() -> None:
    driver = in_transaction()
    driver.answer = lambda e: codes.STORAGE_FULL if isinstance(e, DataCommand) else codes.OK
    evil = b"QUIT\r\nMAIL FROM:<x@example.test>\r\n"
    out = driver.feed(bdat(evil, False) + bdat(b"more\r\n") + b"NOOP\r\n")
    assert replies(out) == [
        "452 4.3.1 Insufficient system storage",
        "503 5.5.1 Error: need RCPT command",  # the pipelined chunk: answered and skipped
        "250 2.0.0 Ok",
    ]
    senders = [str(e.sender) for e in driver.of(MailFrom)]
    assert senders == ["alice@example.test"] and not driver.conn.closing
    assert driver.of(Reset) and driver.of(DataChunk) == []


def test_driver_must_answer_bdat_with_354_or_a_failure() -> None:
    driver = in_transaction()
    driver.conn.receive_data(b"BDAT 1 LAST\r\nx")
    assert isinstance(driver.conn.next_event(), DataCommand)
    with pytest.raises(LocalProtocolError):
        driver.conn.reply(codes.OK)


def test_chunk_over_the_size_limit_gets_552_and_is_skipped() -> None:
    driver = in_transaction()
    big = b"QUIT\r\n" * 2000  # 12000 octets, limit 10000
    out = driver.feed(bdat(big), b"NOOP\r\n")
    assert replies(out) == ["552 5.3.4 Message size exceeds fixed limit", "250 2.0.0 Ok"]
    assert driver.of(DataCommand) == [] and not driver.conn.closing


def test_chunks_adding_up_over_the_limit_get_552() -> None:
    driver = in_transaction()
    part = b"x" * 98 + b"\r\n"
    out = driver.feed(bdat(part * 60, False), bdat(part * 60, False), bdat(part), b"NOOP\r\n")
    assert codes_of(out) == ["250 2.0.0", "552 5.3.4", "503 5.5.1", "250 2.0.0"]
    assert driver.messages == [] and driver.of(EndOfData) == []
    assert len(driver.of(Reset)) == 1


def test_limit_passed_by_normalisation_is_caught_too() -> None:
    driver = in_transaction()
    # 5500 octets are announced, but bare LFs become CRLF: 11000 octets to store.
    out = driver.feed(bdat(b"\n" * 4000, False), bdat(b"\n" * 1500))
    assert codes_of(out) == ["250 2.0.0", "552 5.3.4"]
    assert driver.of(MessageTooBig) and driver.messages == []


def test_data_after_bdat_is_a_bad_sequence() -> None:
    driver = in_transaction()
    out = driver.feed(
        bdat(b"Subject: mixed\r\n", False), b"DATA\r\n", b"RCPT TO:<c@example.test>\r\n"
    )
    assert replies(out) == [
        "250 2.0.0 Ok: 16 octets received",
        "503 5.5.1 Error: BDAT transaction in progress",
        "503 5.5.1 Error: BDAT transaction in progress",
    ]
    assert codes_of(driver.feed(bdat(b"\r\nbody\r\n"))) == ["250 2.0.0"]
    assert driver.messages == [b"Subject: mixed\r\n\r\nbody\r\n"]


def test_bdat_outside_a_transaction_is_refused_and_skipped() -> None:
    driver = ready()
    out = driver.feed(bdat(b"QUIT\r\n"), b"MAIL FROM:<a@example.test>\r\n", bdat(b"QUIT\r\n"))
    assert codes_of(out) == ["503 5.5.1", "250 2.1.0", "554 5.5.1"]
    assert not driver.conn.closing
    # After a chunk with LAST, the transaction is over: another BDAT is a bad sequence.
    driver.feed(b"RCPT TO:<b@example.test>\r\n", bdat(b"x\r\n"))
    assert codes_of(driver.feed(bdat(b"QUIT\r\n"))) == ["503 5.5.1"]


@pytest.mark.parametrize("args", [b"", b"x", b"10 FIRST", b"-1", b"1 LAST extra", b"9" * 19])
def test_bdat_syntax_errors(args: bytes) -> None:
    driver = in_transaction()
    assert codes_of(driver.feed(b"BDAT " + args + b"\r\n")) == ["501 5.5.4"]
    assert driver.of(DataCommand) == []


def test_rset_between_chunks_drops_the_message() -> None:
    driver = in_transaction()
    out = driver.feed(bdat(b"partial\r\n", False), b"RSET\r\n")
    assert codes_of(out) == ["250 2.0.0", "250 2.0.0"]
    assert driver.of(Reset) and driver.conn.state is State.READY
    out = driver.feed(
        b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n", bdat(b"new\r\n")
    )
    assert codes_of(out) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    assert driver.messages == [b"new\r\n"]


def test_data_and_bdat_in_one_session() -> None:
    driver = in_transaction()
    driver.feed(b"DATA\r\nfirst\r\n.\r\n")
    driver.feed(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n", bdat(b"second\r\n"))
    assert driver.messages == [b"first\r\n", b"second\r\n"]


def test_large_chunk_arrives_in_pieces() -> None:
    driver = ready(replace(MX, max_message_size=2_000_000))
    driver.feed(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n")
    content = (b"z" * 1000 + b"\r\n") * 1000
    wire = bdat(content)
    out = driver.feed(*[wire[i : i + 65536] for i in range(0, len(wire), 65536)])
    assert codes_of(out) == ["250 2.0.0"]
    assert driver.messages == [content]
    assert len(driver.of(DataChunk)) > 10
