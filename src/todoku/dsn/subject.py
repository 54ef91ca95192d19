"""The original message's Subject, as a report quotes it: found, unfolded and decoded in time
and memory linear in a small, fixed bound, whatever the original holds.

The standard library's header parser is not used here: its time and memory grow faster than
linearly with the number of RFC 2047 encoded words (a 300 KB Subject of ``=?utf-8?b?5a6b?=``
took a server to 2.1 GB). Only the first ``SUBJECT_SOURCE_LIMIT`` octets of the field and its
first ``MAX_ENCODED_WORDS`` encoded words are read; the result is at most ``SUBJECT_LIMIT``
characters, without control characters.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

SUBJECT_SEARCH_LIMIT = 256 * 1024  # a Subject field starting later than this is not looked for
SUBJECT_SOURCE_LIMIT = 2048  # octets of the field's value read (after the name and colon)
MAX_ENCODED_WORDS = 40  # encoded words decoded; the rest of the field is left out
SUBJECT_LIMIT = 200  # characters quoted

_SUBJECT_FIELD = re.compile(rb"^subject[ \t]*:", re.IGNORECASE | re.MULTILINE)
# RFC 2047 §2: =?charset?encoding?encoded-text?= (the length limit of 75 is not enforced, as
# no mail reader does). Neither group can hold "?", so a failed match costs at most one run.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def original_subject(original: bytes) -> str:
    """The Subject of ``original`` (a whole message or its header block) for a report's text;
    "" when it has none. Never raises."""
    try:
        raw = _subject_source(original)
        return _printable(decode_words(raw)) if raw else ""
    except Exception:  # noqa: BLE001 - a report goes out without the quote rather than not at all
        return ""


def _subject_source(original: bytes) -> str:
    """The first ``SUBJECT_SOURCE_LIMIT`` octets of the Subject field's value, unfolded."""
    if original.startswith(b"\r\n"):
        return ""  # an empty header block: all of it is body
    head = original[:SUBJECT_SEARCH_LIMIT]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[: end + 2]
    match = _SUBJECT_FIELD.search(head)
    if match is None:
        return ""
    value = original[match.end() : match.end() + SUBJECT_SOURCE_LIMIT]
    lines = value.split(b"\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if not line[:1] in (b" ", b"\t"):
            break  # the next field, or the end of the header block
        kept.append(line)
    # RFC 5322 §2.2.3: unfolding removes the line breaks, not the white space after them.
    unfolded = b"".join(line.removesuffix(b"\r") for line in kept)
    return unfolded.decode("utf-8", "replace")  # RFC 6532: UTF-8 header text is allowed


def decode_words(text: str) -> str:
    """RFC 2047 encoded words in ``text`` decoded, at most ``MAX_ENCODED_WORDS`` of them.

    White space between two encoded words is dropped (RFC 2047 §6.2); adjacent words in the same
    charset are decoded together, so a character split between them survives. A word that does
    not decode (bad base64, an unknown or non-text charset) is kept as written."""
    out: list[str] = []
    pending = bytearray()  # octets of adjacent encoded words in one charset, not yet decoded
    pending_charset = ""
    position = 0
    words = 0
    after_word = False

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset:
            out.append(_decode_octets(bytes(pending), pending_charset))
            pending.clear()
            pending_charset = ""

    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        if gap and not (after_word and gap.isspace()):
            flush()
            out.append(gap)
        position = match.end()
        if words >= MAX_ENCODED_WORDS:
            flush()
            return "".join(out)
        words += 1
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 §5: charset*language
        octets = _word_octets(match.group(2), match.group(3))
        if octets is None:
            flush()
            out.append(match.group(0))
            after_word = False
            continue
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending += octets
        after_word = True
    flush()
    out.append(text[position:])
    return "".join(out)


def _word_octets(encoding: str, encoded: str) -> bytes | None:
    try:
        data = encoded.encode("ascii")
    except UnicodeEncodeError:
        return None
    try:
        if encoding in "Bb":
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        return binascii.a2b_qp(data, header=True)  # RFC 2047 §4.2: "_" is a space
    except (binascii.Error, ValueError):
        return None


def _decode_octets(data: bytes, charset: str) -> str:
    """``data`` in ``charset``; UTF-8 (with replacement characters) when Python has no text
    codec of that name or the codec cannot decode it (``idna`` with 0xFF, a NUL in the name)."""
    fallback = data.decode("utf-8", "replace")
    try:
        info = codecs.lookup(charset)
        if not getattr(info, "_is_text_encoding", True):
            return fallback  # base64, rot13, zlib...: not a character set
        return data.decode(info.name, "replace")
    except Exception:  # noqa: BLE001 - LookupError, UnicodeError, ValueError from odd codecs
        return fallback


def _printable(text: str) -> str:
    """Control characters become spaces, runs of white space one space; cut to the limit."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text[: SUBJECT_LIMIT * 4])).strip()
    return text[:SUBJECT_LIMIT].rstrip()
