"""A light reader of RFC 5322 / MIME messages for the bounce analyzer: bytes in, a tree of parts out.

Why not the stdlib ``email`` parser: it is a general push parser (line by line, in pure Python,
building policy-driven header objects), and on a bounce it was 60% of the analyzer's time and
most of its start-up imports. A bounce needs far less: a dozen header values as text, the MIME
tree (RFC 2046 multiparts, nested), transfer decoding (RFC 2045 §6), the charset of each text
part, the message inside ``message/rfc822`` and the field groups of ``message/delivery-status``
(RFC 3464 §2.1). This module does exactly that with whole-buffer operations (``bytes.find``,
``split``), which run in C.

Invariants:

* Reading never raises on any input. Whatever is malformed is read the lenient way and noted in
  ``Part.defects`` (kept as evidence): a header line without a colon ends the header block, a
  multipart whose first delimiter never comes is read as one text, a missing close delimiter
  ends the last part at the end of the data, bad base64 is decoded as far as it goes, and
  undecodable bytes in any charset become U+FFFD.
* Line ends are normalised to LF once, on entry; every offset and text below uses LF only.
* Nesting is bounded (MAX_DEPTH): deeper parts are kept as undecoded leaves.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from collections.abc import Iterator
from itertools import pairwise

MAX_DEPTH = 32  # multipart / message nesting; real bounces use three or four levels
MAX_FIELD_TEXT = 16384  # of one header field, for display (Part.header)

DEFAULT_TYPE = "text/plain"  # RFC 2045 §5.2
DIGEST_DEFAULT_TYPE = "message/rfc822"  # RFC 2046 §5.1.5: the default inside multipart/digest
DELIVERY_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# message/* types whose body is a complete message (RFC 2046 §5.2.1, RFC 6532 §3.7).
ENCAPSULATED_TYPES = frozenset({"message/rfc822", "message/global"})
# message/* types whose body is one group of header-like fields (RFC 5965 §3.1 for feedback).
FIELD_GROUP_TYPES = frozenset({"message/feedback-report", "message/disposition-notification"})

# Charset labels written by Japanese carriers and Windows mailers → the Python codec that reads
# what they really send: ISO-2022-JP mail carries JIS X 0212 kanji and NEC/IBM extensions, and
# "Shift_JIS" is in practice Microsoft's CP932 (e.g. circled digits, ①), as is most EUC-JP text
# from Windows systems, which the plain codecs would turn into U+FFFD.
CHARSET_ALIASES = {
    "iso-2022-jp": "iso2022_jp_2",
    "iso-2022-jp-2": "iso2022_jp_2",
    "csiso2022jp": "iso2022_jp_2",
    "iso-2022-jp-3": "iso2022_jp_3",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "ms_kanji": "cp932",
    "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
}

# RFC 2045 §5.1 parameters: ``; name=value`` or ``; name="quoted \" value"``.
_PARAMETER = re.compile(r';\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;\s]*))', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 2047 §2 encoded word; §6.2: white space between adjacent encoded words is dropped.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_BLANK_LINE = re.compile(rb"\n[ \t]*\n")
# RFC 5322 §2.2, §3.6.8: a field name is printable US-ASCII except ":", then ":" and the value
# with its continuation lines (each starting with white space).
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n")
_FIELDS = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)*")
_FIELD_TEXT = re.compile(r"([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n")


# What a charset label may name: the codecs that turn bytes of a real character set into text.
# Python's codec registry also holds codecs that are no charset at all and must never be reached
# from a label in a message: "undefined" (raises on every input), "idna" and "punycode" (raise on
# bad input whatever the error handler), "unicode_escape" and "raw_unicode_escape" (interpret
# backslashes), and the bytes-to-bytes ones ("zlib", "base64", "rot13" ...). Labels are matched
# on the registry's canonical name (codecs.lookup(label).name), so every alias of a real charset
# is accepted and nothing else is.
_TEXT_CODEC = re.compile(
    r"utf-(?:8(?:-sig)?|7|16(?:-[lb]e)?|32(?:-[lb]e)?)|ascii|iso8859-\d{1,2}|cp\d{3,5}|"
    r"mac-[a-z]+|koi8-[a-z]|kz1048|ptcp154|hp-roman8|tis-620|euc_[a-z0-9_]+|iso2022_[a-z0-9_]+|"
    r"shift_jis(?:_2004|x0213)?|gb2312|gbk|gb18030|big5(?:hkscs)?|hz|johab"
)
FALLBACK_CODEC = "utf-8"  # for labels that name no charset we can read; bad bytes become U+FFFD
_MAX_LABEL = 40  # RFC 2978 §2.3: a registered charset name is at most 40 characters


def codec_for(charset: str) -> str:
    """The Python codec to decode text labelled ``charset``: aliases applied, and FALLBACK_CODEC
    for a label that is unknown, malformed (a NUL, an overlong name) or names a codec that is not
    a text charset."""
    label = charset.strip().strip('"').lower()
    if not label or len(label) > _MAX_LABEL or not label.isascii() or not label.isprintable():
        return FALLBACK_CODEC
    return _text_codec(CHARSET_ALIASES.get(label, label))


@functools.lru_cache(maxsize=128)
def _text_codec(label: str) -> str:
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return FALLBACK_CODEC
    return label if _TEXT_CODEC.fullmatch(name) else FALLBACK_CODEC


def decode_text(data: bytes, charset: str = "utf-8") -> str:
    """Bytes → text in ``charset``; unknown or unusable charsets are read as UTF-8, and bad bytes
    become U+FFFD. Never raises."""
    try:
        return data.decode(codec_for(charset), "replace")
    except (LookupError, ValueError):  # UnicodeError is a ValueError; belt and braces
        return data.decode(FALLBACK_CODEC, "replace")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in a header value; a word that cannot be decoded stays.

    Adjacent words in the same charset are joined as bytes before decoding: encoders split a
    multi-byte text anywhere (an ISO-2022-JP escape sequence may start in one word and end in
    the next), so each word alone need not be decodable. Linear in the value's length (the run's
    bytes are collected in a list, not by repeated concatenation).
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    last_end = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[last_end : match.start()]
        if not (after_word and not between.strip(" \t")):  # RFC 2047 §6.2
            if pending:
                out.append(decode_text(b"".join(pending), pending_charset))
                pending = []
            out.append(between)
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 §5: charset*language
        data = _word_bytes(match)
        if pending and (data is None or charset != pending_charset):
            out.append(decode_text(b"".join(pending), pending_charset))
            pending = []
        if data is None:
            out.append(match.group(0))
        else:
            pending.append(data)
            pending_charset = charset
        after_word = True
        last_end = match.end()
    if pending:
        out.append(decode_text(b"".join(pending), pending_charset))
    out.append(value[last_end:])
    return "".join(out)


def _word_bytes(match: re.Match[str]) -> bytes | None:
    _charset, encoding, text = match.groups()
    raw = text.encode("ascii", "replace")
    try:
        if encoding in "bB":
            return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
        # RFC 2047 §4.2: "_" is a space in the Q encoding.
        return _Q_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw.replace(b"_", b" "))
    except (binascii.Error, ValueError):
        return None


def _header_text(data: bytes) -> str:
    # RFC 6532 allows UTF-8 in header fields; anything else non-ASCII is damaged text.
    return data.decode("ascii") if data.isascii() else data.decode("utf-8", "replace")


class Part:
    """One entity of the message: its header fields, content type and body, and its children.

    ``parts``: the parts of a multipart, or the one message inside message/rfc822.
    ``blocks``: the field groups of message/delivery-status (first the per-message fields, then
    one per recipient, RFC 3464 §2.1) and of message/feedback-report.

    The body is split into parts only when ``parts`` or ``blocks`` is first read (and the
    defects of doing so are recorded then): the analyzer reads the header fields of the returned
    mail inside a bounce, and rarely anything below them.
    """

    __slots__ = (
        "_all",
        "_blocks",
        "_first",
        "_parts",
        "_pending_depth",
        "body",
        "content_type",
        "defects",
        "fields",
        "params",
        "preamble_text",
    )

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}
        self._all: dict[str, list[str]] | None = None  # every value by name, built on first use
        self.content_type = DEFAULT_TYPE
        self.params: dict[str, str] = {}
        self.body = b""
        self._parts: list[Part] = []
        self._blocks: list[Part] = []
        self._pending_depth = -1  # >= 0: the body is still to be split, at this depth
        self.defects: list[str] = []
        self.preamble_text = ""

    @property
    def parts(self) -> list[Part]:
        if self._pending_depth >= 0:
            self._expand()
        return self._parts

    @property
    def blocks(self) -> list[Part]:
        if self._pending_depth >= 0:
            self._expand()
        return self._blocks

    def _expand(self) -> None:
        depth, self._pending_depth = self._pending_depth, -1
        ctype = self.content_type
        if ctype.startswith("multipart/"):
            _split_multipart(self, depth)
        elif ctype in ENCAPSULATED_TYPES:
            self._parts.append(_read(self.payload(), DEFAULT_TYPE, depth + 1))
        elif ctype in DELIVERY_STATUS_TYPES or ctype in FIELD_GROUP_TYPES:
            self._blocks = field_groups(self.payload())

    # -- header fields -----------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field called ``name`` (any case), unfolded, as written."""
        return self._first.get(name.lower(), default)

    def header(self, name: str) -> str:
        """The first field called ``name`` for display: encoded words decoded, trimmed; ``""``.

        Only the first MAX_FIELD_TEXT characters are read: what the analyzer reads from a field
        (an address, a status, a reply, a subject) is far shorter."""
        value = self._first.get(name.lower())
        if not value:
            return ""
        value = value[:MAX_FIELD_TEXT]
        return (decode_words(value) if "=?" in value else value).strip()

    def get_all(self, name: str) -> list[str]:
        """Every field called ``name`` (any case), in order."""
        key = name.lower()
        if key not in self._first:
            return []  # the common case, answered without a scan
        if self._all is None:
            self._all = {}
            for field, value in self.fields:
                self._all.setdefault(field.lower(), []).append(value)
        return list(self._all.get(key, ()))

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)

    def _add_field(self, name: str, value: str) -> None:
        self.fields.append((name, value))
        self._first.setdefault(name.lower(), value)
        self._all = None

    # -- content -----------------------------------------------------------------------------
    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def charset(self) -> str:
        return self.params.get("charset", "")

    def payload(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone (RFC 2045 §6)."""
        encoding = (self._first.get("content-transfer-encoding") or "").strip().lower()
        if encoding == "base64":
            return _base64(self.body, self.defects)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(self.body)
        return self.body

    def text(self) -> str:
        """The decoded body as text in its declared charset (UTF-8 when none is declared)."""
        return decode_text(self.payload(), self.charset or "utf-8")

    def walk(self) -> Iterator[Part]:
        """This part, then every part below it, depth first (field groups are not parts)."""
        yield self
        for child in self.parts:
            yield from child.walk()


def _base64(body: bytes, defects: list[str]) -> bytes:
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        defects.append("InvalidBase64")
    # Decode line by line as far as each line goes: a truncated or damaged tail loses only
    # itself, not the whole part.
    out = []
    for line in body.split(b"\n"):
        line = line.strip()
        try:
            out.append(binascii.a2b_base64(line + b"=" * (-len(line) % 4)))
        except binascii.Error:
            continue
    return b"".join(out)


def parse_fields(
    text: bytes, part: Part | None = None, unfolded_lines_continue: bool = False
) -> tuple[Part, int]:
    """Read a header block from the start of ``text`` (LF line ends) into ``part``.

    Returns the part and the offset where the body starts: after the blank line, or at the first
    line that is neither a field nor a continuation (RFC 5322 §2.2; a missing separator is a
    defect, and that line belongs to the body).

    ``unfolded_lines_continue``: such a line continues the field before it instead (for DSN
    field groups, where MTAs write a multi-line reply into Diagnostic-Code without folding it).
    """
    if part is None:
        part = Part()
    if text.startswith(b"\n"):
        return part, 1
    end = text.find(b"\n\n")
    block = text[: end + 1] if end >= 0 else text + b"\n"
    body_at = end + 2 if end >= 0 else len(text)
    position = 0
    if block.startswith(b"From "):  # the mbox envelope line (RFC 4155), not a field
        position = block.find(b"\n") + 1
    # The run of well-formed fields is found in one C-level match, then split into (name, value)
    # pairs by one findall: no Python loop per line or per field.
    valid_end = _FIELDS.match(block, position).end()  # type: ignore[union-attr]  # matches ""
    if valid_end > position:
        chunk = block[position:valid_end]
        text_block = chunk.decode("ascii") if chunk.isascii() else chunk.decode("utf-8", "replace")
        pairs: list[tuple[str, str]] = _FIELD_TEXT.findall(text_block)
        if "\n " in text_block or "\n\t" in text_block:
            # RFC 5322 §2.2.3: unfolding removes the line breaks and keeps the white space.
            pairs = [(n, v.replace("\n", "")) if "\n" in v else (n, v) for n, v in pairs]
        part.fields = pairs
        part._first = {name.lower(): value for name, value in reversed(pairs)}
        position = valid_end
    if position < len(block):
        if unfolded_lines_continue and part.fields:
            # The rest of the group: each line either starts a field or continues the last one.
            # A field's continuation lines are collected, then joined once (not by growing the
            # value line by line, which was quadratic in the number of lines).
            continued: list[str] = []
            for raw in block[position:].split(b"\n"):
                match = _FIELD.match(raw + b"\n")
                if match:
                    _continue_last_field(part, continued)
                    part._add_field(
                        match.group(1).decode("ascii"),
                        _header_text(match.group(2).replace(b"\n", b"")),
                    )
                elif raw.strip():
                    continued.append(_header_text(raw))
            _continue_last_field(part, continued)
        else:
            part.defects.append("MissingHeaderBodySeparator")
            body_at = position
    return part, min(body_at, len(text))


def _continue_last_field(part: Part, lines: list[str]) -> None:
    """Append ``lines`` (unfolded continuation lines) to the part's last field, and empty it."""
    if not lines:
        return
    part.defects.append("UnfoldedContinuation")
    name, value_so_far = part.fields[-1]
    part.fields[-1] = (name, " ".join((value_so_far, *lines)))
    if part._first.get(name.lower()) == value_so_far:
        part._first[name.lower()] = part.fields[-1][1]
    part._all = None
    lines.clear()


def _content_type(part: Part, default: str) -> None:
    value = part._first.get("content-type")
    if value is None:
        part.content_type = default
        return
    head, _, rest = value.partition(";")
    ctype = head.strip().lower()
    # RFC 2045 §5.2: a syntactically invalid Content-Type is read as text/plain.
    if "/" not in ctype or " " in ctype:
        part.defects.append("InvalidContentType")
        ctype = DEFAULT_TYPE
    part.content_type = ctype
    if rest:
        for key, quoted, bare in _PARAMETER.findall(";" + rest):
            key = key.lower()
            if key not in part.params:
                if not quoted:
                    part.params[key] = bare
                else:  # the substitution only where there is a quoted pair to undo
                    part.params[key] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted


def read(data: bytes) -> Part:
    """Read one message (bytes as stored or received; CRLF or bare LF)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return _read(data, DEFAULT_TYPE, 0)


def read_fields(data: bytes) -> Part:
    """Read only a header block (the headers of a returned message given as text)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    part, _ = parse_fields(data)
    return part


def _read(data: bytes, default_type: str, depth: int) -> Part:
    """One entity; what is below it is read on first use (Part.parts, Part.blocks)."""
    part, body_at = parse_fields(data)
    _content_type(part, default_type)
    part.body = data[body_at:]
    if depth >= MAX_DEPTH:
        part.defects.append("NestingTooDeep")
        return part
    part._pending_depth = depth
    return part


def field_groups(body: bytes) -> list[Part]:
    """The header-like field groups of a delivery-status body, split at blank lines
    (RFC 3464 §2.1); a group without any field (stray text) is dropped."""
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    groups = []
    for chunk in _BLANK_LINE.split(body.strip(b"\n")):
        if b":" in chunk:
            group, _ = parse_fields(chunk.lstrip(b"\n") + b"\n\n", None, True)
            if group.fields:
                groups.append(group)
    return groups


def _split_multipart(part: Part, depth: int) -> None:
    """RFC 2046 §5.1.1: the body is split at lines "--boundary"; "--boundary--" closes it.

    The line break before a delimiter belongs to the delimiter. Text before the first delimiter
    (the preamble) and after the close (the epilogue) are not parts.
    """
    boundary = part.params.get("boundary", "").encode("utf-8", "replace")
    body = part.body
    if not boundary:
        part.defects.append("MultipartWithoutBoundary")
        return
    delimiter = b"--" + boundary
    # Positions of the delimiter lines: (start of the line, start of the next line, closes?).
    lines: list[tuple[int, int, bool]] = []
    at = 0 if body.startswith(delimiter) else body.find(b"\n" + delimiter)
    while at >= 0:
        start = at if at == 0 and body.startswith(delimiter) else at + 1
        after = start + len(delimiter)
        line_end = body.find(b"\n", after)
        if line_end < 0:
            line_end = len(body)
        tail = body[after:line_end].rstrip(b" \t")
        if tail in (b"", b"--"):
            lines.append((start, line_end + 1, tail == b"--"))
            if tail == b"--":
                break
        at = body.find(b"\n" + delimiter, after)
    if not lines:
        # The boundary the header declares never comes: the body stays one text (the caller
        # reads it as such).
        part.defects.append("StartBoundaryNotFound")
        return
    part.preamble_text = decode_text(body[: max(lines[0][0] - 1, 0)])
    if not lines[-1][2]:
        part.defects.append("CloseBoundaryNotFound")
        lines.append((len(body) + 1, len(body) + 1, True))
    default = DIGEST_DEFAULT_TYPE if part.content_type == "multipart/digest" else DEFAULT_TYPE
    for (_, content_at, closes), (next_start, _, _) in pairwise(lines):
        if closes:
            break
        part._parts.append(
            _read(body[content_at : max(next_start - 1, content_at)], default, depth + 1)
        )
