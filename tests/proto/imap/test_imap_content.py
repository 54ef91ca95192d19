"""MIME structure, FETCH responses, SEARCH matching and the selected-folder view, without I/O."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.proto.imap import fetch, mime, search
from todoku.proto.imap.syntax import Command, Tokenizer, format_sequence, sequence_set
from todoku.proto.imap.view import FolderView

MESSAGE = (
    b'From: "Joe Q. Public" <joe@example.com>, bob@example.org\r\n'
    b"To: friends: ann@example.net, Cy <cy@example.net>;\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_menu?=\r\n"
    b"Date: Tue, 1 Feb 2022 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Cr=C3=A8me br=C3=BBl=C3=A9e\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream; name=a.bin\r\n"
    b"Content-Disposition: attachment; filename=a.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XX\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XX--\r\n"
)


def structure() -> mime.Structure:
    return mime.parse(MESSAGE)


def test_envelope_keeps_raw_values_and_reads_addresses_and_groups() -> None:
    env = structure().envelope
    assert env.startswith(b'("Tue, 1 Feb 2022 10:00:00 +0100" "=?utf-8?q?Caf=C3=A9_menu?=" ')
    assert b'(("Joe Q. Public" NIL "joe" "example.com")(NIL NIL "bob" "example.org"))' in env
    assert (
        b'((NIL NIL "friends" NIL)(NIL NIL "ann" "example.net")("Cy" NIL "cy" "example.net")'
        b"(NIL NIL NIL NIL))" in env
    )
    assert env.endswith(b' NIL NIL "<m1@example.com>")')


def test_bodystructure_of_a_multipart_with_an_attachment_and_a_message() -> None:
    bs = structure().bodystructure
    assert bs.startswith(b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" ')
    assert b'("ATTACHMENT" ("FILENAME" "a.bin"))' in bs
    assert b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" ' in bs
    assert bs.endswith(b' "MIXED" ("BOUNDARY" "XX") NIL NIL NIL)')
    assert b"ATTACHMENT" not in structure().body  # BODY is the non-extensible form


def test_sections_by_path_and_text() -> None:
    s = structure()
    root = s.root
    assert mime.section_bytes(MESSAGE, root, (1,), "") == b"Cr=C3=A8me br=C3=BBl=C3=A9e"
    assert mime.section_bytes(MESSAGE, root, (2,), "MIME").startswith(b"Content-Type: appl")
    assert mime.section_bytes(MESSAGE, root, (3,), "HEADER") == b"Subject: inner\r\n\r\n"
    assert mime.section_bytes(MESSAGE, root, (3, 1), "") == b"inner body"
    assert mime.section_bytes(MESSAGE, root, (9,), "") == b""
    fields = mime.section_bytes(MESSAGE, root, (), "HEADER.FIELDS", ("subject", "DATE"))
    assert fields == (
        b"Subject: =?utf-8?q?Caf=C3=A9_menu?=\r\nDate: Tue, 1 Feb 2022 10:00:00 +0100\r\n\r\n"
    )
    rest = mime.section_bytes(
        MESSAGE, root, (), "HEADER.FIELDS.NOT", ("from", "to", "content-type")
    )
    assert b"From:" not in rest and b"friends" not in rest and b"Subject:" in rest


def message(seq: int = 1, uid: int = 7, flags: frozenset[str] = frozenset()) -> fetch.Message:
    return fetch.Message(seq, uid, flags, 3, len(MESSAGE), 1_700_000_000.0, structure(), MESSAGE)


def items(text: str) -> tuple[fetch.Item, ...]:
    tok = Tokenizer(Command(text.encode(), {}))
    return fetch.parse_items(tok.value())


def test_fetch_response_of_flags_uid_size_and_partial_body() -> None:
    out = fetch.response(
        message(flags=frozenset({"\\Seen"})),
        items("(UID FLAGS RFC822.SIZE INTERNALDATE MODSEQ BODY.PEEK[]<0.4>)"),
    )
    assert out == (
        b"* 1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE %d "
        b'INTERNALDATE "14-Nov-2023 22:13:20 +0000" MODSEQ (3) BODY[]<0> {4}\r\nFrom)\r\n'
        % len(MESSAGE)
    )


def test_binary_undoes_the_transfer_encoding() -> None:
    out = fetch.response(message(), items("(BINARY.PEEK[2] BINARY.SIZE[1])"))
    assert b"BINARY[2] ~{4}\r\n\x00\x01\x02\x03" in out
    assert b"BINARY.SIZE[1] %d" % len("Crème brûlée".encode()) in out


def test_body_without_peek_sets_seen_and_peek_does_not() -> None:
    assert items("BODY[TEXT]")[0].sets_seen and not items("BODY.PEEK[TEXT]")[0].sets_seen
    assert not fetch.needs_content(items("(FLAGS UID ENVELOPE)"))
    assert fetch.needs_structure(items("ENVELOPE"))


def key(text: str) -> search.Key:
    return search.parse(Tokenizer(Command(text.encode(), {})))


def candidate(**kw: object) -> search.Candidate:
    base: dict[str, object] = {
        "seq": 1,
        "uid": 7,
        "flags": frozenset({"\\Seen"}),
        "size": len(MESSAGE),
        "internaldate": 1_700_000_000.0,
        "modseq": 3,
        "structure": structure(),
        "content": MESSAGE,
    }
    base.update(kw)
    return search.Candidate(**base)  # type: ignore[arg-type]


def test_search_keys_match_decoded_headers_and_bodies_case_insensitively() -> None:
    c = candidate()
    for text, expected in [
        ("SUBJECT café", True),
        ("SUBJECT CAFÉ", True),
        ("FROM joe", True),
        ("TO cy@example", True),
        ("BODY brûlée", True),
        ("BODY inner", True),
        ("TEXT menu", True),
        ("BODY menu", False),
        ("SEEN", True),
        ("UNSEEN", False),
        ("NOT SEEN", False),
        ("OR DELETED FLAGGED", False),
        ("OR DELETED (SEEN LARGER 10)", True),
        ("SENTON 1-Feb-2022", True),
        ("SENTBEFORE 1-Feb-2022", False),
        ("SINCE 14-Nov-2023", True),
        ("BEFORE 14-Nov-2023", False),
        ("UID 5:8", True),
        ("1", True),
        ("2:*", True),  # "*" is the largest, so 2:* names 1 too when there is one message
        ("MODSEQ 4", False),
        ('HEADER Message-ID "<m1@"', True),
        ('HEADER X-Nothing ""', False),
        ("KEYWORD $Junk", False),
        ("UNKEYWORD $Junk", True),
    ]:
        assert key(text).match(c, 1, 7) is expected, text


def test_flag_searches_need_no_content() -> None:
    assert key("UNSEEN UID 1:*").needs() == set()
    assert key("FROM x").needs() == {"structure"}
    assert key("OR SEEN BODY x").needs() == {"structure", "content"}


def test_esearch_response() -> None:
    assert search.esearch("A1", True, [1, 2, 3, 7], ("MIN", "COUNT"), None) == (
        b'* ESEARCH (TAG "A1") UID MIN 1 COUNT 4\r\n'
    )
    assert search.esearch("A2", False, [], (), None) == b'* ESEARCH (TAG "A2")\r\n'


@given(st.sets(st.integers(min_value=1, max_value=200), max_size=40))
@settings(max_examples=50)
def test_sequence_sets_round_trip(numbers: set[int]) -> None:
    if not numbers:
        return
    text = format_sequence(numbers)
    from todoku.proto.imap.syntax import Atom

    parsed = sequence_set(Atom(text))
    assert parsed.members(range(1, 201), 200) == sorted(numbers)


@dataclass(frozen=True)
class Info:
    uid: int
    flags: frozenset[str]
    modseq: int


def test_view_reports_expunge_flags_and_exists_in_order() -> None:
    view = FolderView(
        [Info(1, frozenset(), 1), Info(2, frozenset(), 1), Info(3, frozenset(), 1)], 1
    )
    out = view.update(
        [Info(1, frozenset({"\\Seen"}), 2), Info(3, frozenset(), 1), Info(4, frozenset(), 3)],
        3,
        vanished=False,
        modseq=False,
    )
    assert out == [
        b"* 2 EXPUNGE\r\n",
        b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n",
        b"* 3 EXISTS\r\n",
    ]
    assert view.resolve(sequence_set_of("2:*"), uid=False) == [(2, 3), (3, 4)]
    assert view.resolve(sequence_set_of("3:100"), uid=True) == [(2, 3), (3, 4)]


def test_view_with_qresync_reports_vanished() -> None:
    view = FolderView([Info(1, frozenset(), 1), Info(2, frozenset(), 1)], 1)
    assert view.update([Info(2, frozenset(), 1)], 2, vanished=True, modseq=True) == [
        b"* VANISHED 1\r\n"
    ]


def sequence_set_of(text: str):  # type: ignore[no-untyped-def]
    from todoku.proto.imap.syntax import Atom

    return sequence_set(Atom(text))
