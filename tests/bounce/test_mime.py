"""The bounce analyzer's own MIME reader (todoku.bounce.mime), on hand-made messages.

Each test states one rule of RFC 5322 / 2045 / 2046 / 2047 / 3464 or one kind of damage real
bounces show, and checks what the reader makes of it; none of them touches the analyzer.
"""

from __future__ import annotations

import base64
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.bounce import mime


def _message(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\n", b"\r\n")


REPORT = """From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: sender@example.org
Subject: Undelivered Mail
 Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="outer \\"quoted\\" b"

This is a MIME-encapsulated message (preamble).

--outer "quoted" b
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

plain words
--inner
Content-Type: text/html

<p>html words</p>
--inner--
--outer "quoted" b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; nobody@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach
550 does not exist.

--outer "quoted" b
Content-Type: message/rfc822

From: sender@example.org
To: nobody@example.com
Subject: hello

the original body
--outer "quoted" b--
epilogue text
"""


def test_header_fields_unfolded_and_found_in_any_case() -> None:
    part = mime.read(_message(REPORT))
    # RFC 5322 §2.2.3: unfolding removes the line break and keeps the white space.
    assert part.get("subject") == "Undelivered Mail Returned to Sender"
    assert part.header("SUBJECT") == "Undelivered Mail Returned to Sender"
    assert part.get("X-Missing") is None and part.header("X-Missing") == ""
    assert part.get_all("to") == ["sender@example.org"]
    assert part.content_type == "multipart/report"
    assert part.params == {"report-type": "delivery-status", "boundary": 'outer "quoted" b'}


def test_crlf_and_bare_lf_read_the_same() -> None:
    with_crlf = mime.read(_message(REPORT))
    with_lf = mime.read(REPORT.encode("utf-8"))
    assert [(p.content_type, p.fields, p.body) for p in with_crlf.walk()] == [
        (p.content_type, p.fields, p.body) for p in with_lf.walk()
    ]


def test_nested_multiparts_message_and_delivery_status() -> None:
    part = mime.read(_message(REPORT))
    assert [p.content_type for p in part.walk()] == [
        "multipart/report",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "message/delivery-status",
        "message/rfc822",
        "text/plain",
    ]
    alternative, status, returned = part.parts
    # RFC 2046 §5.1.1: the line break before a delimiter belongs to the delimiter.
    assert alternative.parts[0].text() == "plain words"
    assert alternative.parts[1].text() == "<p>html words</p>"
    assert "preamble" in part.preamble_text
    assert all(b"epilogue" not in p.body for p in part.parts)
    # RFC 3464 §2.1: per-message fields, then one group per recipient.
    per_message, per_recipient = status.blocks
    assert per_message.get("Reporting-MTA") == "dns; mx.example.net"
    assert per_recipient.get("Status") == "5.1.1"
    # A reply written over two lines without folding stays one Diagnostic-Code.
    assert per_recipient.get("Diagnostic-Code") == (
        "smtp; 550-5.1.1 The email account that you tried to reach 550 does not exist."
    )
    assert returned.parts[0].get("To") == "nobody@example.com"
    assert returned.parts[0].text() == "the original body"
    assert part.defects == []


def test_missing_close_delimiter_ends_the_last_part_at_the_end() -> None:
    data = b"Content-Type: multipart/mixed; boundary=b1\n\n--b1\n\nfirst\n--b1\n\nsecond, cut off"
    part = mime.read(data)
    assert [p.text() for p in part.parts] == ["first", "second, cut off"]
    assert "CloseBoundaryNotFound" in part.defects


def test_boundary_that_never_comes_leaves_one_text() -> None:
    data = b"Content-Type: multipart/report; boundary=declared\n\n--other\n\nwords\n--other--\n"
    part = mime.read(data)
    assert part.parts == []
    assert "StartBoundaryNotFound" in part.defects
    assert "words" in part.text()


def test_a_longer_line_starting_with_the_boundary_is_not_a_delimiter() -> None:
    data = b"Content-Type: multipart/mixed; boundary=abc\n\n--abc\n\none\n--abcdef\ntwo\n--abc--\n"
    part = mime.read(data)
    assert [p.text() for p in part.parts] == ["one\n--abcdef\ntwo"]


def test_a_line_without_a_colon_ends_the_header_block() -> None:
    part = mime.read(b"Subject: s\nthis is no field\nX-After: 1\n\nbody\n")
    assert part.get("Subject") == "s"
    assert part.get("X-After") is None
    assert part.body.startswith(b"this is no field")
    assert "MissingHeaderBodySeparator" in part.defects


def test_mbox_envelope_line_and_invalid_content_type() -> None:
    part = mime.read(
        b"From sender@example.org Sat Nov 28 03:00:00 2026\n"
        b"Content-Type: nonsense\nSubject: s\n\nbody"
    )
    assert part.get("Subject") == "s"
    # RFC 2045 §5.2: an invalid Content-Type is read as text/plain.
    assert part.content_type == "text/plain"
    assert part.text() == "body"


def test_transfer_encodings() -> None:
    encoded = base64.encodebytes("5.1.1 user unknown — ユーザー不明".encode()).decode()
    part = mime.read(
        (
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: BASE64\n\n" + encoded
        ).encode()
    )
    assert part.text() == "5.1.1 user unknown — ユーザー不明"
    part = mime.read(
        b"Content-Transfer-Encoding: quoted-printable\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\n"
        b"caf=E9 soft=\nbreak"
    )
    assert part.text() == "café softbreak"


def test_broken_base64_decodes_as_far_as_it_goes() -> None:
    good = base64.b64encode(b"550 5.1.1 no such user..").decode()  # 24 bytes: no padding
    # A truncated last line (one character past a 4-character group) cannot be decoded.
    part = mime.read(f"Content-Transfer-Encoding: base64\n\n{good}\nQUJDR\n".encode())
    assert part.text() == "550 5.1.1 no such user.."
    assert "InvalidBase64" in part.defects


def test_japanese_charsets_and_bad_bytes() -> None:
    text = "メールボックスが一杯です①"
    for label, codec in (
        ("ISO-2022-JP", "iso2022_jp_2"),
        ("Shift_JIS", "cp932"),
        ("EUC-JP", "euc_jis_2004"),
    ):
        body = text.encode(codec)
        part = mime.read(f"Content-Type: text/plain; charset={label}\n\n".encode() + body)
        assert part.text() == text, label
    # Bytes that are not valid in the declared charset become U+FFFD; nothing raises.
    part = mime.read(b"Content-Type: text/plain; charset=shift_jis\n\nok \x82 end")
    assert part.text().startswith("ok ") and "\ufffd" in part.text()
    part = mime.read(b"Content-Type: text/plain; charset=x-no-such-charset\n\n\xe2\x9c\x93")
    assert part.text() == "\u2713"


def test_encoded_words() -> None:
    # An ISO-2022-JP text split across two words in the middle of a kanji run (as encoders do).
    subject = "=?iso-2022-jp?B?GyRCJS0lOCVIJWkbKEIvGyRCJUsl=?=\n =?iso-2022-jp?B?YyE8JXMbKEI=?="
    part = mime.read(f"Subject: {subject}\n\n".encode())
    assert part.header("Subject") == "キジトラ/ニャーン"
    assert (
        mime.decode_words("=?utf-8?q?user_unknown=3A?= =?utf-8?b?w6k=?= plain")
        == "user unknown:é plain"
    )
    assert mime.decode_words("=?utf-8?B?0JTQsA==?=. Mail failure.") == "Да. Mail failure."
    # Undecodable words stay as written.
    assert mime.decode_words("a =?utf-8?q?=ZZ?= b") in ("a =?utf-8?q?=ZZ?= b", "a =ZZ b")


def test_huge_body_and_deep_nesting_are_bounded() -> None:
    big = b"Content-Type: text/plain\n\n" + b"x" * 2_000_000 + b"\n"
    started = time.perf_counter()
    part = mime.read(big)
    assert len(part.body) == 2_000_001
    nested = b""
    for level in range(200):
        nested += f"Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n".encode()
    part = mime.read(nested + b"\ninnermost\n")
    depth = sum(1 for _ in part.walk())
    assert depth == mime.MAX_DEPTH + 1
    assert "NestingTooDeep" in list(part.walk())[-1].defects
    # Generous: the point is "linear, no pathological case", not a benchmark.
    assert time.perf_counter() - started < 10


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"\r\n", b"\n--B\n", b"=?", b":"]))
def test_never_raises(noise: bytes, glue: bytes) -> None:
    data = _message(REPORT)
    cut = len(noise) * 3 % len(data)
    part = mime.read(data[:cut] + glue + noise + data[cut:])
    for inner in part.walk():
        inner.text()
        inner.header("Subject")
        for block in inner.blocks:
            block.get("Status")
