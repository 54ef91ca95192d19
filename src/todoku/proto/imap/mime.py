"""MIME structure for IMAP FETCH: parts with their offsets, ENVELOPE and BODYSTRUCTURE.

``parse(message)`` reads a message once and returns a ``Structure``: the tree of parts, each with
the offsets of its header and body in the message, and the ENVELOPE and BODYSTRUCTURE responses
already written out. FETCH of BODY[section] then slices the message by offsets, and FETCH of
ENVELOPE or BODYSTRUCTURE costs nothing more (the session keeps structures by blob id: content
never changes after it is stored).

Bounded (message bytes are untrusted): parts per message, nesting, header fields per part and
addresses per field; past a bound the rest is taken as plain content, never an error. RFC 2045
(MIME), RFC 2046 (multipart, message/rfc822), RFC 2183 (Content-Disposition), RFC 9051 §7.5.2
(BODYSTRUCTURE, ENVELOPE). Header values in ENVELOPE are sent as they are in the message
(encoded-words undecoded), as RFC 9051 says.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field

from todoku.proto.imap.syntax import nstring, quoted

MAX_PARTS = 500
MAX_DEPTH = 20
MAX_FIELDS = 1000
MAX_ADDRESSES = 1000

_BLANK = re.compile(rb"\r?\n\r?\n")


@dataclass(slots=True)
class Part:
    """One MIME entity: ``start``..``body_start`` is its header (with the blank line),
    ``body_start``..``end`` its body."""

    start: int
    body_start: int
    end: int
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    fields: list[tuple[str, bytes]] = field(default_factory=list)  # (lower-case name, raw value)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the message inside a message/rfc822 part
    lines: int = 0

    def header(self, name: str) -> bytes | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    @property
    def encoding(self) -> str:
        value = self.header("content-transfer-encoding")
        return value.decode("ascii", "replace").strip().lower() if value else "7bit"

    @property
    def multipart(self) -> bool:
        return self.maintype == "multipart" and bool(self.children)


@dataclass(frozen=True, slots=True)
class Structure:
    """What FETCH needs of one message, computed once."""

    root: Part
    size: int
    envelope: bytes
    body: bytes  # BODY (non-extensible BODYSTRUCTURE)
    bodystructure: bytes


def parse(message: bytes) -> Structure:
    counter = [0]
    root = _parse_part(message, 0, len(message), 0, counter, ("text", "plain"))
    return Structure(
        root=root,
        size=len(message),
        envelope=envelope(root),
        body=_bodystructure(root, extended=False),
        bodystructure=_bodystructure(root, extended=True),
    )


# ---------------------------------------------------------------------------- headers


def parse_fields(header: bytes) -> list[tuple[str, bytes]]:
    """Header fields as (lower-case name, value without the folding line ends)."""
    fields: list[tuple[str, bytes]] = []
    name: str | None = None
    value: list[bytes] = []
    for line in header.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            fields.append((name, b"".join(value).strip()))
            if len(fields) >= MAX_FIELDS:
                return fields
        key, colon, rest = line.partition(b":")
        if not colon or not key or b" " in key.strip(b" \t") or len(key) > 200:
            name = None
            continue
        name = key.strip(b" \t").decode("ascii", "replace").lower()
        value = [rest]
    if name is not None:
        fields.append((name, b"".join(value).strip()))
    return fields


_TOKEN = re.compile(rb'\s*([^\s;=()"]+)\s*')


def parse_params(value: bytes) -> tuple[str, list[tuple[str, str]]]:
    """``type/subtype; a=b; c="d"`` → ("type/subtype", [("A", "b"), ("C", "d")]) with comments
    dropped; RFC 2231 continuations are joined (``name*0``, ``name*1``) and left encoded."""
    text = _strip_comments(value)
    head, _, rest = text.partition(b";")
    params: list[tuple[str, str]] = []
    pos = 0
    rest = rest.strip()
    while pos < len(rest) and len(params) < 100:
        m = _TOKEN.match(rest, pos)
        if m is None:
            break
        key = m.group(1).decode("ascii", "replace")
        pos = m.end()
        if pos >= len(rest) or rest[pos : pos + 1] != b"=":
            pos = rest.find(b";", pos)
            if pos < 0:
                break
            pos += 1
            continue
        pos += 1
        while pos < len(rest) and rest[pos] in b" \t":
            pos += 1
        if rest[pos : pos + 1] == b'"':
            out = bytearray()
            pos += 1
            while pos < len(rest) and rest[pos] != 0x22:
                if rest[pos] == 0x5C and pos + 1 < len(rest):
                    pos += 1
                out.append(rest[pos])
                pos += 1
            pos += 1
            val = bytes(out)
        else:
            end = rest.find(b";", pos)
            end = len(rest) if end < 0 else end
            val = rest[pos:end].strip()
            pos = end
        semi = rest.find(b";", pos)
        pos = len(rest) if semi < 0 else semi + 1
        params.append((key, val.decode("utf-8", "replace")))
    return head.strip().decode("ascii", "replace").lower(), _join_continuations(params)


def _join_continuations(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 2231 §3: ``name*0``, ``name*1`` ... joined in order under ``name`` (``name*0*``
    pieces keep their charset'language' prefix and escapes: IMAP shows parameters as sent)."""
    out: list[tuple[str, str]] = []
    pieces: dict[str, list[tuple[int, str]]] = {}
    for key, value in params:
        m = re.fullmatch(r"(.+)\*([0-9]{1,3})\*?", key)
        if m is None:
            out.append((key, value))
        else:
            pieces.setdefault(m.group(1), []).append((int(m.group(2)), value))
    for name, parts in pieces.items():
        out.append((name, "".join(v for _, v in sorted(parts))))
    return out


def _strip_comments(value: bytes) -> bytes:
    if b"(" not in value:
        return value
    out = bytearray()
    depth = 0
    quoted_ = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted_:
            out.append(c)
            if c == 0x5C and i + 1 < len(value):
                i += 1
                out.append(value[i])
            elif c == 0x22:
                quoted_ = False
        elif c == 0x22 and depth == 0:
            quoted_ = True
            out.append(c)
        elif c == 0x28:
            depth += 1
        elif c == 0x29 and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    return bytes(out)


# ---------------------------------------------------------------------------- parts


def _parse_part(
    data: bytes, start: int, end: int, depth: int, counter: list[int], default: tuple[str, str]
) -> Part:
    counter[0] += 1
    m = _BLANK.search(data, start, end)
    if data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
        # No header at all: the blank line is the first line.
        body_start = start + (2 if data.startswith(b"\r\n", start) else 1)
        header = b""
    elif m is None:
        body_start = end
        header = data[start:end]
    else:
        body_start = m.end()
        header = data[start : m.start()]
    part = Part(start, body_start, end)
    part.fields = parse_fields(header)
    part.maintype, part.subtype = default
    ctype = part.header("content-type")
    if ctype is not None:
        kind, params = parse_params(ctype)
        main, slash, sub = kind.partition("/")
        if slash and main and sub:
            part.maintype, part.subtype = main, sub
            part.params = params
        elif default == ("text", "plain"):
            part.params = [("CHARSET", "us-ascii")]
    if not part.params and part.maintype == "text":
        part.params = [("CHARSET", "us-ascii")]
    body = data[body_start:end]
    if part.maintype == "text" or (part.maintype, part.subtype) == ("message", "rfc822"):
        part.lines = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
    if depth >= MAX_DEPTH or counter[0] >= MAX_PARTS:
        if part.maintype == "multipart":
            part.maintype, part.subtype, part.params = "text", "plain", [("CHARSET", "us-ascii")]
        return part
    if part.maintype == "multipart":
        boundary = next((v for k, v in part.params if k.lower() == "boundary"), "")
        if boundary:
            child_default = ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
            for child_start, child_end in _split(data, body_start, end, boundary.encode()):
                if counter[0] >= MAX_PARTS:
                    break
                part.children.append(
                    _parse_part(data, child_start, child_end, depth + 1, counter, child_default)
                )
        if not part.children:
            # RFC 2046 §5.1: a multipart without parts is broken; show it as one empty text part.
            part.children.append(Part(body_start, body_start, body_start))
    elif (part.maintype, part.subtype) == ("message", "rfc822") and part.encoding in (
        "7bit",
        "8bit",
        "binary",
    ):
        part.message = _parse_part(data, body_start, end, depth + 1, counter, ("text", "plain"))
    return part


def _split(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The (start, end) of each body part between ``--boundary`` delimiter lines (RFC 2046
    §5.1.1): the line end before a delimiter belongs to the delimiter."""
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    pos = start
    current: int | None = None
    while pos < end:
        at = data.find(delimiter, pos, end)
        if at < 0:
            break
        if at != start and data[at - 1] != 0x0A:
            pos = at + len(delimiter)
            continue
        line_end = data.find(b"\n", at, end)
        line_end = end if line_end < 0 else line_end + 1
        closing = data.startswith(b"--", at + len(delimiter))
        rest = data[at + len(delimiter) + (2 if closing else 0) : line_end].strip()
        if rest:  # "--boundaryX" is another boundary, not this one
            pos = line_end
            continue
        if current is not None:
            before = at
            if before > current and data[before - 1] == 0x0A:
                before -= 1
                if before > current and data[before - 1] == 0x0D:
                    before -= 1
            parts.append((current, before))
            if len(parts) >= MAX_PARTS:
                return parts
        if closing:
            return parts
        current = line_end
        pos = line_end
    if current is not None and current < end:
        parts.append((current, end))  # no closing delimiter: the last part runs to the end
    return parts


# ---------------------------------------------------------------------------- ENVELOPE


def envelope(message: Part) -> bytes:
    """RFC 9051 §7.5.2 ENVELOPE of a message (its header fields)."""

    def field_(name: str) -> bytes:
        value = message.header(name)
        return nstring(value) if value is not None else b"NIL"

    sender_from = _addresses(message.header("from"))
    sender = _addresses(message.header("sender")) or sender_from
    reply_to = _addresses(message.header("reply-to")) or sender_from
    items = [
        field_("date"),
        field_("subject"),
        sender_from or b"NIL",
        sender or b"NIL",
        reply_to or b"NIL",
        _addresses(message.header("to")) or b"NIL",
        _addresses(message.header("cc")) or b"NIL",
        _addresses(message.header("bcc")) or b"NIL",
        field_("in-reply-to"),
        field_("message-id"),
    ]
    return b"(" + b" ".join(items) + b")"


_ADDR_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"?|([<>,:;@])|([^\s<>,:;@"]+))', re.DOTALL)


def _addresses(value: bytes | None) -> bytes:
    """An address list as IMAP's list of (name adl mailbox host), with groups; b"" for none."""
    if value is None:
        return b""
    text = _strip_comments(value)
    out: list[bytes] = []
    phrase: list[bytes] = []
    spec: list[bytes] | None = None
    in_group = False
    count = 0

    def emit(name: list[bytes], addr: list[bytes]) -> None:
        nonlocal count
        joined = b"".join(addr)
        if b"@" in addr:
            at = len(addr) - 1 - addr[::-1].index(b"@")
            local, host = b"".join(addr[:at]), b"".join(addr[at + 1 :])
        else:
            local, host = joined, b""
        if not local and not host:
            return
        count += 1
        if count > MAX_ADDRESSES:
            return
        display = b" ".join(name).strip() if name else None
        out.append(
            b"("
            + nstring(display or None)
            + b" NIL "
            + nstring(local or None)
            + b" "
            + (nstring(host) if host else b"NIL")
            + b")"
        )

    for m in _ADDR_TOKEN.finditer(text):
        quoted_text, special, word = m.group(1), m.group(2), m.group(3)
        if spec is not None:  # inside <...>
            if special == b">":
                addr = spec
                if b":" in addr:  # route: @a,@b:local@host
                    addr = addr[len(addr) - addr[::-1].index(b":") :]
                emit(phrase, addr)
                phrase, spec = [], None
            elif quoted_text is not None:
                spec.append(b'"' + quoted_text + b'"')
            elif special is not None:
                spec.append(special)
            elif word is not None:
                spec.append(word)
            continue
        if special == b"<":
            spec = []
        elif special == b",":
            if phrase:
                emit([], phrase)
            phrase = []
        elif special == b":" and not in_group:
            in_group = True
            out.append(b"(NIL NIL " + nstring(b" ".join(phrase)) + b" NIL)")
            phrase = []
        elif special == b";" and in_group:
            if phrase:
                emit([], phrase)
            phrase = []
            in_group = False
            out.append(b"(NIL NIL NIL NIL)")
        elif special is not None:
            phrase.append(special)
        elif quoted_text is not None:
            phrase.append(re.sub(rb"\\(.)", rb"\1", quoted_text))
        elif word is not None:
            phrase.append(word)
    if spec is not None and spec:
        emit(phrase, spec)
    elif phrase:
        emit([], phrase)
    if in_group:
        out.append(b"(NIL NIL NIL NIL)")
    return b"(" + b"".join(out) + b")" if out else b""


# ---------------------------------------------------------------------------- BODYSTRUCTURE


def _param_list(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(quoted(k.upper()) + b" " + quoted(v) for k, v in params) + b")"


def _bodystructure(part: Part, *, extended: bool) -> bytes:
    if part.multipart:
        inner = b"".join(_bodystructure(child, extended=extended) for child in part.children)
        out = inner + b" " + quoted(part.subtype.upper())
        if extended:
            out += b" " + _param_list(part.params) + b" " + _extension(part)
        return b"(" + out + b")"
    items = [
        quoted(part.maintype.upper()),
        quoted(part.subtype.upper()),
        _param_list(part.params),
        nstring(_value(part, "content-id")),
        nstring(_value(part, "content-description")),
        quoted(part.encoding.upper()),
        str(part.end - part.body_start).encode(),
    ]
    if part.message is not None:
        items += [
            envelope(part.message),
            _bodystructure(part.message, extended=extended),
            str(part.lines).encode(),
        ]
    elif part.maintype == "text":
        items.append(str(part.lines).encode())
    if extended:
        items += [nstring(_value(part, "content-md5")), _extension(part)]
    return b"(" + b" ".join(items) + b")"


def _value(part: Part, name: str) -> bytes | None:
    value = part.header(name)
    return value.strip() if value is not None else None


def _extension(part: Part) -> bytes:
    """body-fld-dsp body-fld-lang body-fld-loc"""
    disposition = part.header("content-disposition")
    if disposition is None:
        dsp = b"NIL"
    else:
        kind, params = parse_params(disposition)
        dsp = b"(" + quoted(kind.upper() or "ATTACHMENT") + b" " + _param_list(params) + b")"
    language = part.header("content-language")
    if language is None:
        lang = b"NIL"
    else:
        tags = [t.strip() for t in _strip_comments(language).split(b",") if t.strip()][:20]
        lang = quoted(tags[0]) if len(tags) == 1 else b"(" + b" ".join(map(quoted, tags)) + b")"
        if not tags:
            lang = b"NIL"
    return dsp + b" " + lang + b" " + nstring(_value(part, "content-location"))


# ---------------------------------------------------------------------------- sections


class NoSuchPart(LookupError):
    pass


def find_part(root: Part, path: tuple[int, ...]) -> Part:
    part = root
    for index, n in enumerate(path):
        part = _child(part, n, index == 0)
    return part


def _child(part: Part, n: int, top: bool) -> Part:
    if part.multipart:
        if 1 <= n <= len(part.children):
            return part.children[n - 1]
        raise NoSuchPart
    if not top and part.message is not None:
        return _child(part.message, n, top=True)
    if n == 1:
        return part
    raise NoSuchPart


def section_bytes(
    message: bytes,
    root: Part,
    path: tuple[int, ...],
    text: str,
    fields: tuple[str, ...] = (),
) -> bytes:
    """The octets BODY[path.text (fields)] names (RFC 9051 §6.4.5); b"" for a part that does
    not exist (as other servers answer: an empty string, not an error)."""
    try:
        part = find_part(root, path)
    except NoSuchPart:
        return b""
    if text == "":
        if not path:
            return message
        return message[part.body_start : part.end]
    if text == "MIME":
        return message[part.start : part.body_start] if path else b""
    entity = part
    if path:
        if part.message is None:
            return b""
        entity = part.message
    if text == "TEXT":
        return message[entity.body_start : entity.end]
    header = message[entity.start : entity.body_start]
    if text == "HEADER":
        return header
    wanted = {f.lower() for f in fields}
    keep = text == "HEADER.FIELDS"
    return _filter_header(header, wanted, keep)


def _filter_header(header: bytes, wanted: set[str], keep: bool) -> bytes:
    out: list[bytes] = []
    taking = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            continue
        if line[:1] in (b" ", b"\t"):
            if taking:
                out.append(line)
            continue
        name = line.partition(b":")[0].strip().decode("ascii", "replace").lower()
        taking = (name in wanted) == keep
        if taking:
            out.append(line)
    return b"".join(out) + b"\r\n"


def decode_body(data: bytes, encoding: str) -> bytes | None:
    """A part's content with its transfer encoding undone (BINARY); None when it is not one
    todoku can undo (RFC 3516 §4.2: answered NO [UNKNOWN-CTE])."""
    if encoding in ("7bit", "8bit", "binary", ""):
        return data
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return None
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return None
