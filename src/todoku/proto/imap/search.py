"""SEARCH keys (RFC 9051 §6.4.4, RFC 7162 MODSEQ): parsing and matching.

Text and header keys match case-insensitively over decoded content: header fields with their
RFC 2047 encoded-words decoded, bodies with their transfer encoding and charset undone
(RFC 9051 §6.4.4: "case-insensitive substring"). Only UTF-8 (and US-ASCII) search charsets.

``Key.needs`` tells the driver what a search reads: nothing beyond the message list (flags,
sizes, dates, UIDs), the structure (header fields, kept per message), or the content (BODY,
TEXT), so that a flag search over 5,000 messages reads no file.
"""

from __future__ import annotations

import email.header
import email.utils
import time
from dataclasses import dataclass, field

from todoku.proto.imap import mime
from todoku.proto.imap.syntax import (
    ImapSyntaxError,
    SequenceSet,
    Tokenizer,
    Value,
    astring,
    atom,
    format_sequence,
    number,
    parse_date,
    sequence_set,
)

MAX_DEPTH = 30


class BadCharset(ImapSyntaxError):
    """RFC 9051 §6.4.4: NO [BADCHARSET (UTF-8)]."""


@dataclass(frozen=True, slots=True)
class Candidate:
    seq: int
    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float
    modseq: int
    structure: mime.Structure | None = None
    content: bytes | None = None


@dataclass(slots=True)
class Key:
    """One search key: ``op`` names it, ``args`` carry its operands."""

    op: str
    args: tuple[object, ...] = ()
    children: list[Key] = field(default_factory=list)

    def needs(self) -> set[str]:
        need: set[str] = set()
        if self.op in ("HEADER", "SENT"):
            need.add("structure")
        elif self.op in ("BODY", "TEXT"):
            need |= {"structure", "content"}
        for child in self.children:
            need |= child.needs()
        return need

    def match(self, c: Candidate, largest_seq: int, largest_uid: int) -> bool:
        op = self.op
        if op == "AND":
            return all(k.match(c, largest_seq, largest_uid) for k in self.children)
        if op == "OR":
            return any(k.match(c, largest_seq, largest_uid) for k in self.children)
        if op == "NOT":
            return not self.children[0].match(c, largest_seq, largest_uid)
        if op == "ALL":
            return True
        if op == "FLAG":
            return self.args[0] in c.flags
        if op == "UNFLAG":
            return self.args[0] not in c.flags
        if op == "SEQ":
            seqs = self.args[0]
            assert isinstance(seqs, SequenceSet)
            return seqs.contains(c.seq, largest_seq)
        if op == "UID":
            uids = self.args[0]
            assert isinstance(uids, SequenceSet)
            return uids.contains(c.uid, largest_uid)
        if op == "LARGER":
            return c.size > _int(self.args[0])
        if op == "SMALLER":
            return c.size < _int(self.args[0])
        if op == "MODSEQ":
            return c.modseq >= _int(self.args[0])
        if op == "DATE":
            day = _day(c.internaldate)
            return _compare(day, self.args)
        if op == "SENT":
            sent = _sent_day(c)
            return sent is not None and _compare(sent, self.args)
        if op == "HEADER":
            name, needle = self.args
            assert isinstance(name, str) and isinstance(needle, str)
            return _header_contains(c, name, needle)
        if op in ("BODY", "TEXT"):
            needle = self.args[0]
            assert isinstance(needle, str)
            return _text_contains(c, needle, with_header=op == "TEXT")
        if op == "NONE":
            return False
        raise AssertionError(op)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _compare(day: tuple[int, int, int], args: tuple[object, ...]) -> bool:
    how, when = args
    if how == "BEFORE":
        return day < when  # type: ignore[operator]
    if how == "ON":
        return day == when
    return day >= when  # type: ignore[operator]


def _day(when: float) -> tuple[int, int, int]:
    t = time.gmtime(when)
    return t.tm_year, t.tm_mon, t.tm_mday


def _sent_day(c: Candidate) -> tuple[int, int, int] | None:
    if c.structure is None:
        return None
    value = c.structure.root.header("date")
    if value is None:
        return None
    parsed = email.utils.parsedate_tz(value.decode("ascii", "replace"))
    if parsed is None:
        return None
    # RFC 9051 §6.4.4: SENT* compare the date in the Date field, disregarding time and timezone.
    return parsed[0], parsed[1], parsed[2]


def decode_header_value(value: bytes) -> str:
    """A header value with RFC 2047 encoded-words decoded, for matching."""
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, ValueError, UnicodeError, email.errors.HeaderParseError):
        return text


def _header_contains(c: Candidate, name: str, needle: str) -> bool:
    if c.structure is None:
        return False
    lowered = name.lower()
    present = False
    for key, value in c.structure.root.fields:
        if key == lowered:
            present = True
            if needle in decode_header_value(value).casefold():
                return True
    # RFC 9051 §6.4.4: HEADER name "" matches every message that has the field.
    return present and needle == ""


def _text_contains(c: Candidate, needle: str, *, with_header: bool) -> bool:
    if c.structure is None or c.content is None:
        return False
    if with_header:
        for _, value in c.structure.root.fields:
            if needle in decode_header_value(value).casefold():
                return True
    for part in _leaves(c.structure.root):
        if part.maintype != "text":
            continue
        raw = c.content[part.body_start : part.end]
        decoded = mime.decode_body(raw, part.encoding)
        if decoded is None:
            continue
        charset = next((v for k, v in part.params if k.upper() == "CHARSET"), "utf-8")
        try:
            text = decoded.decode(charset, "replace")
        except LookupError:
            text = decoded.decode("utf-8", "replace")
        if needle in text.casefold():
            return True
    return False


def _leaves(part: mime.Part) -> list[mime.Part]:
    out: list[mime.Part] = []
    stack = [part]
    while stack and len(out) < mime.MAX_PARTS:
        p = stack.pop()
        if p.multipart:
            stack.extend(reversed(p.children))
        elif p.message is not None:
            stack.append(p.message)
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------- parsing

_FLAG_KEYS = {
    "ANSWERED": ("FLAG", "\\Answered"),
    "DELETED": ("FLAG", "\\Deleted"),
    "DRAFT": ("FLAG", "\\Draft"),
    "FLAGGED": ("FLAG", "\\Flagged"),
    "SEEN": ("FLAG", "\\Seen"),
    "UNANSWERED": ("UNFLAG", "\\Answered"),
    "UNDELETED": ("UNFLAG", "\\Deleted"),
    "UNDRAFT": ("UNFLAG", "\\Draft"),
    "UNFLAGGED": ("UNFLAG", "\\Flagged"),
    "UNSEEN": ("UNFLAG", "\\Seen"),
    "OLD": ("ALL", None),  # no \Recent here: every message is old
    "NEW": ("NONE", None),
    "RECENT": ("NONE", None),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
_DATE_KEYS = {
    "BEFORE": ("DATE", "BEFORE"),
    "ON": ("DATE", "ON"),
    "SINCE": ("DATE", "SINCE"),
    "SENTBEFORE": ("SENT", "BEFORE"),
    "SENTON": ("SENT", "ON"),
    "SENTSINCE": ("SENT", "SINCE"),
}


def parse(tok: Tokenizer) -> Key:
    """The search keys to the end of the command (an implicit AND)."""
    keys = [_key(tok, 0)]
    while not tok.at_end():
        tok.space()
        keys.append(_key(tok, 0))
    return keys[0] if len(keys) == 1 else Key("AND", children=keys)


def _key(tok: Tokenizer, depth: int) -> Key:
    if depth > MAX_DEPTH:
        raise ImapSyntaxError(f"search keys nest at most {MAX_DEPTH} deep")
    return _from_value(tok.value(), _TokReader(tok), depth)


def _from_value(value: Value, reader: _Reader, depth: int) -> Key:
    if isinstance(value, list):
        if not value:
            raise ImapSyntaxError("an empty search list")
        inner = _ListReader(value)
        keys = [_from_value(inner.next(), inner, depth + 1)]
        while inner.more():
            keys.append(_from_value(inner.next(), inner, depth + 1))
        return keys[0] if len(keys) == 1 else Key("AND", children=keys)
    if isinstance(value, bytes):
        raise ImapSyntaxError("a search key is an atom such as FROM, SEEN or 1:5")
    name = value.upper
    if name in ("ALL",):
        return Key("ALL")
    if name in _FLAG_KEYS:
        op, flag = _FLAG_KEYS[name]
        return Key(op, (flag,) if flag else ())
    if name in ("KEYWORD", "UNKEYWORD"):
        flag = atom(reader.arg(), "a keyword")
        return Key("FLAG" if name == "KEYWORD" else "UNFLAG", (flag,))
    if name in _HEADER_KEYS:
        return Key("HEADER", (name, _needle(reader.arg())))
    if name == "HEADER":
        field_name = astring(reader.arg(), "a header field name")
        return Key("HEADER", (field_name, _needle(reader.arg())))
    if name in ("BODY", "TEXT"):
        return Key(name, (_needle(reader.arg()),))
    if name in _DATE_KEYS:
        op, how = _DATE_KEYS[name]
        return Key(op, (how, parse_date(reader.arg())))
    if name in ("LARGER", "SMALLER"):
        return Key(name, (number(reader.arg(), "a size", bits=63),))
    if name == "UID":
        return Key("UID", (sequence_set(reader.arg()),))
    if name == "NOT":
        return Key("NOT", children=[reader.key(depth + 1)])
    if name == "OR":
        return Key("OR", children=[reader.key(depth + 1), reader.key(depth + 1)])
    if name == "MODSEQ":
        arg = reader.arg()
        if isinstance(arg, bytes):  # entry-name entry-type-req, then the mod-sequence
            reader.arg()
            arg = reader.arg()
        return Key("MODSEQ", (number(arg, "a mod-sequence", bits=63),))
    if value.text[:1].isdigit() or value.text[:1] in ("*", "$"):
        if value.text == "$":
            raise ImapSyntaxError("$ (SEARCHRES) is not offered")
        return Key("SEQ", (sequence_set(value),))
    raise ImapSyntaxError(f"unknown search key {name[:40]}")


def _needle(value: Value) -> str:
    return astring(value, "a search string").casefold()


class _Reader:
    def arg(self) -> Value:
        raise NotImplementedError

    def key(self, depth: int) -> Key:
        raise NotImplementedError


class _TokReader(_Reader):
    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok

    def arg(self) -> Value:
        self.tok.space()
        return self.tok.value()

    def key(self, depth: int) -> Key:
        self.tok.space()
        return _key(self.tok, depth)


class _ListReader(_Reader):
    def __init__(self, values: list[Value]) -> None:
        self.values = values
        self.index = 0

    def more(self) -> bool:
        return self.index < len(self.values)

    def next(self) -> Value:
        if self.index >= len(self.values):
            raise ImapSyntaxError("a search key is missing its argument")
        self.index += 1
        return self.values[self.index - 1]

    def arg(self) -> Value:
        return self.next()

    def key(self, depth: int) -> Key:
        return _from_value(self.next(), self, depth)


def run(
    key: Key, candidates: list[Candidate], largest_seq: int, largest_uid: int
) -> list[Candidate]:
    return [c for c in candidates if key.match(c, largest_seq, largest_uid)]


def esearch(
    tag: str, uid: bool, found: list[int], returns: tuple[str, ...], modseq: int | None
) -> bytes:
    """``* ESEARCH (TAG "x") [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]`` (RFC 4731)."""
    wanted = returns or ("ALL",)
    out = [b'* ESEARCH (TAG "' + tag.encode() + b'")']
    if uid:
        out.append(b"UID")
    if found:
        if "MIN" in wanted:
            out.append(b"MIN %d" % min(found))
        if "MAX" in wanted:
            out.append(b"MAX %d" % max(found))
        if "ALL" in wanted:
            out.append(b"ALL " + format_sequence(found).encode())
    if "COUNT" in wanted:
        out.append(b"COUNT %d" % len(found))
    if modseq is not None and found:
        out.append(b"MODSEQ %d" % modseq)
    return b" ".join(out) + b"\r\n"
