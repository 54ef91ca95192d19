"""Fuzz the bounce analyzer's MIME reader (bounce/mime.py) with hostile and mutated messages.

Its documented invariants: reading never raises on any input (whatever is malformed becomes a
defect), line ends are LF once read, nesting is bounded by MAX_DEPTH. The targets read arbitrary
bytes and structured mutations of real bounces (the corpus), walk every part and touch
everything the analyzer touches: fields, decoded headers, payloads, text in the declared
charset, delivery-status field groups. The work is bounded by the input size (MAX_MESSAGE);
there is no timing assertion.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import MAX_MESSAGE, fuzz_settings, mutated_message
from todoku.bounce import mime


def touch_everything(data: bytes) -> int:
    """Read ``data`` and use every accessor; returns how many parts were walked."""
    root = mime.read(data)
    count = 0
    for part in root.walk():
        count += 1
        assert len(part.defects) < 10 * (len(data) + 10)
        assert all(isinstance(d, str) for d in part.defects)
        for name, value in part.items():
            # Field values are unfolded: a line break never survives inside one.
            assert "\n" not in value, (name, value)
            assert part.get(name) is not None
            assert value in part.get_all(name)
            assert isinstance(part.header(name), str)
        assert isinstance(part.text(), str)
        assert isinstance(part.payload(), bytes)
        assert part.content_type == part.content_type.lower() and "/" in part.content_type
        for block in part.blocks:
            for name, value in block.items():
                assert "\n" not in value, (name, value)
        assert isinstance(part.preamble_text, str)
    assert count <= len(data) + 1  # every part below the root needs at least its own delimiter
    return count


def depth(part: mime.Part) -> int:
    return 1 + max((depth(child) for child in part.parts), default=0)


@fuzz_settings(2)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_are_read_without_raising(data: bytes) -> None:
    touch_everything(data)


@fuzz_settings()
@given(data=mutated_message())
def test_mutated_bounces_are_read_without_raising(data: bytes) -> None:
    assert len(data) <= MAX_MESSAGE
    touch_everything(data)


def _nested(levels: int) -> bytes:
    head = b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n"
    return b"".join(head % (n, n) for n in range(levels)) + b"x\n"


@fuzz_settings(0.5)
@given(levels=st.integers(1, 200), encapsulated=st.booleans())
def test_nesting_is_bounded(levels: int, encapsulated: bool) -> None:
    data = b"Content-Type: message/rfc822\n\n" * levels + b"x" if encapsulated else _nested(levels)
    assert depth(mime.read(data)) <= mime.MAX_DEPTH + 1
    touch_everything(data)


# Charset labels that name Python codecs which are no charset (issue 12, finding 9): "undefined"
# raises on every input, "idna" and "punycode" whatever the error handler, and a NUL in a label
# makes the codec lookup raise ValueError.
HOSTILE_LABELS = [
    "undefined",
    "idna",
    "punycode",
    "a\0b",
    "\0",
    "utf-8\0",
    "zlib",
    "base64",
    "rot13",
    "unicode_escape",
    "raw_unicode_escape",
    "hex",
    "uu",
    "bz2",
    "x" * 100,
    "utf-8'en'",
    "utf-8*en",
    "",
    " ",
    '"',
    "mbcs",
    "cp65001",
    "utf_16_le",
]


@fuzz_settings()
@given(
    label=st.one_of(st.sampled_from(HOSTILE_LABELS), st.text(max_size=12)),
    body=st.binary(max_size=20),
    where=st.sampled_from(["word", "body", "param"]),
)
@example(label="undefined", body=b"x", where="word")
@example(label="idna", body=b"\xff", where="word")
@example(label="a\0b", body=b"\xff", where="body")
def test_any_charset_label_is_read_without_raising(label: str, body: bytes, where: str) -> None:
    encoded = body.hex().upper()
    word = (
        "=?"
        + label
        + "?q?"
        + "".join("=" + encoded[i : i + 2] for i in range(0, len(encoded), 2))
        + "?="
    )
    assert isinstance(mime.decode_words(word), str)
    assert isinstance(mime.decode_text(body, label), str)
    label_bytes = label.encode("utf-8", "surrogateescape")
    if where == "param":
        data = b'Content-Type: text/plain; charset="' + label_bytes + b'"\r\n\r\n' + body
    elif where == "word":
        data = b"Subject: " + word.encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    else:
        data = b"Content-Type: text/plain; charset=" + label_bytes + b"\r\n\r\n" + body
    touch_everything(data)
