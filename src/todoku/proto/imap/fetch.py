"""FETCH items (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ): parsing and responses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from todoku.proto.imap import mime
from todoku.proto.imap.syntax import (
    Atom,
    ImapSyntaxError,
    Value,
    astring,
    format_date_time,
)

MAX_ITEMS = 100
MAX_FIELDS = 200

_SIMPLE = frozenset(
    {
        "FLAGS",
        "UID",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "MODSEQ",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
    }
)
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_CONTENT = frozenset(
    {"BODY[]", "BINARY[]", "BINARY.SIZE[]", "RFC822", "RFC822.HEADER", "RFC822.TEXT"}
)
_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME", "")


@dataclass(frozen=True, slots=True)
class Item:
    """One FETCH item. ``name`` is the simple name, or BODY[], BINARY[] or BINARY.SIZE[] for the
    section forms (``path``, ``text``, ``fields``, ``partial`` and ``peek`` describe those)."""

    name: str
    path: tuple[int, ...] = ()
    text: str = ""
    fields: tuple[str, ...] = ()
    partial: tuple[int, int | None] | None = None
    peek: bool = False

    @property
    def needs_content(self) -> bool:
        return self.name in _CONTENT

    @property
    def needs_structure(self) -> bool:
        return self.name in ("ENVELOPE", "BODYSTRUCTURE", "BODY") or (
            self.needs_content and bool(self.path or self.text)
        )

    @property
    def sets_seen(self) -> bool:
        """RFC 9051 §6.4.5: fetching content sets \\Seen unless it is a PEEK."""
        return (self.name in ("BODY[]", "BINARY[]") and not self.peek) or self.name in (
            "RFC822",
            "RFC822.TEXT",
        )


def parse_items(value: Value) -> tuple[Item, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ImapSyntaxError("FETCH needs at least one item")
    if len(values) > MAX_ITEMS:
        raise ImapSyntaxError(f"at most {MAX_ITEMS} FETCH items")
    items: list[Item] = []
    for v in values:
        if not isinstance(v, Atom):
            raise ImapSyntaxError("a FETCH item is an atom such as FLAGS or BODY[]")
        name = v.upper
        if v.section is None:
            if name in _MACROS and not isinstance(value, list):
                items += [Item(n) for n in _MACROS[name]]
            elif name in _SIMPLE or name == "BODY":
                items.append(Item(name))
            else:
                raise ImapSyntaxError(f"unknown FETCH item {name[:40]}")
            continue
        if name in ("BODY", "BODY.PEEK"):
            path, text, fields = _section(v.section, binary=False)
            items.append(Item("BODY[]", path, text, fields, v.partial, name == "BODY.PEEK"))
        elif name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
            path, text, fields = _section(v.section, binary=True)
            if name == "BINARY.SIZE" and v.partial is not None:
                raise ImapSyntaxError("BINARY.SIZE takes no partial")
            kind = "BINARY.SIZE[]" if name == "BINARY.SIZE" else "BINARY[]"
            items.append(Item(kind, path, text, fields, v.partial, name == "BINARY.PEEK"))
        else:
            raise ImapSyntaxError(f"unknown FETCH item {name[:40]}[...]")
    return tuple(items)


def _section(
    values: tuple[Value, ...], *, binary: bool
) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    if not values:
        return (), "", ()
    spec = values[0]
    if not isinstance(spec, Atom) or spec.section is not None:
        raise ImapSyntaxError("a section is like 1.2, HEADER, TEXT or HEADER.FIELDS (From)")
    path: list[int] = []
    words = spec.upper.split(".")
    while words and words[0].isdigit() and len(words[0]) <= 6 and int(words[0]) > 0:
        path.append(int(words.pop(0)))
        if len(path) > mime.MAX_DEPTH:
            raise ImapSyntaxError("section path too deep")
    text = ".".join(words)
    if text not in _TEXTS or (text == "MIME" and not path) or (binary and text):
        raise ImapSyntaxError(f"unknown section {spec.text[:40]}")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        if len(values) != 2 or not isinstance(values[1], list) or not values[1]:
            raise ImapSyntaxError(f"{text} needs a list of field names")
        if len(values[1]) > MAX_FIELDS:
            raise ImapSyntaxError(f"at most {MAX_FIELDS} field names")
        fields = tuple(astring(f, "a header field name") for f in values[1])
    elif len(values) != 1:
        raise ImapSyntaxError("unexpected text in a section")
    return tuple(path), text, fields


def needs_content(items: Iterable[Item]) -> bool:
    return any(i.needs_content for i in items)


def needs_structure(items: Iterable[Item]) -> bool:
    return any(i.needs_structure for i in items)


def format_flags(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("utf-8") + b")"


def _literal(data: bytes, binary: bool = False) -> bytes:
    if binary and b"\0" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


def _section_name(item: Item) -> bytes:
    spec = ".".join([*map(str, item.path), *([item.text] if item.text else [])])
    if item.fields:
        spec += " (" + " ".join(f.upper() for f in item.fields) + ")"
    base = "BODY" if item.name == "BODY[]" else item.name[:-2]
    return f"{base}[{spec}]".encode()


@dataclass(frozen=True, slots=True)
class Message:
    """What a FETCH response is made from: the message's facts, its structure and content when
    the items need them (``needs_structure``, ``needs_content``)."""

    seq: int
    uid: int
    flags: frozenset[str]
    modseq: int
    size: int
    internaldate: float
    structure: mime.Structure | None = None
    content: bytes | None = None


class UnknownTransferEncoding(ValueError):
    """BINARY of a part whose transfer encoding todoku cannot undo (RFC 3516 UNKNOWN-CTE)."""


def response(message: Message, items: Iterable[Item]) -> bytes:
    """``* seq FETCH (...)`` with the items in the order asked."""
    out: list[bytes] = []
    for item in items:
        out.append(_render(message, item))
    return b"* %d FETCH (" % message.seq + b" ".join(out) + b")\r\n"


def _render(m: Message, item: Item) -> bytes:
    name = item.name
    if name == "FLAGS":
        return b"FLAGS " + format_flags(m.flags)
    if name == "UID":
        return b"UID %d" % m.uid
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % m.modseq
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % m.size
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + format_date_time(m.internaldate).encode()
    structure = m.structure
    if name in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
        assert structure is not None
        if name == "ENVELOPE":
            return b"ENVELOPE " + structure.envelope
        if name == "BODY":
            return b"BODY " + structure.body
        return b"BODYSTRUCTURE " + structure.bodystructure
    content = m.content
    assert content is not None
    if name == "RFC822":
        return b"RFC822 " + _literal(content)
    if name in ("RFC822.HEADER", "RFC822.TEXT"):
        root = structure.root if structure is not None else mime.parse(content).root
        text = "HEADER" if name == "RFC822.HEADER" else "TEXT"
        return name.encode() + b" " + _literal(mime.section_bytes(content, root, (), text))
    if item.path or item.text:
        assert structure is not None
        data = mime.section_bytes(content, structure.root, item.path, item.text, item.fields)
    else:
        data = content
    if name in ("BINARY[]", "BINARY.SIZE[]"):
        encoding = "7bit"
        if item.path:
            assert structure is not None
            try:
                part = mime.find_part(structure.root, item.path)
                encoding = part.encoding
            except mime.NoSuchPart:
                pass
        decoded = mime.decode_body(data, encoding)
        if decoded is None:
            raise UnknownTransferEncoding(encoding)
        data = decoded
        if name == "BINARY.SIZE[]":
            return _section_name(item) + b" %d" % len(data)
    label = _section_name(item)
    if item.partial is not None:
        start, count = item.partial
        data = data[start:] if count is None else data[start : start + count]
        label += b"<%d>" % start
    return label + b" " + _literal(data, binary=name == "BINARY[]")
