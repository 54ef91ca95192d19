"""IMAP command syntax (RFC 9051 §9, RFC 3501 §9): tokens, sequence sets, dates, quoting.

A command arrives as lines and literals. The connection joins them into one ``Command``: the
text of its lines (literal announcements ``{n}`` kept in place) and the literals, each found by
where its announcement starts. ``Tokenizer`` then reads values from it:

- ``Atom``: a run of atom characters, leniently including ``*``, ``%``, ``\\`` and ``]`` where
  the grammar puts them (flags, sequence sets, LIST patterns); an atom may carry a section
  ``[...]`` (its contents tokenized, nested lists allowed) and a partial ``<n.m>`` as FETCH items
  such as ``BODY.PEEK[HEADER.FIELDS (From)]<0.100>`` do.
- ``bytes``: a quoted string or a literal (``{n}``, ``{n+}``, ``~{n}``).
- ``list``: a parenthesised list.

Every read is bounded by the caller's limits: line length and literal sizes in the connection,
nesting depth and value count here.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_DEPTH = 8  # parenthesised lists (and sections) inside one another
MAX_VALUES = 10_000  # values in one command (a long UID list is one atom, not many values)
MAX_SEQUENCE_RANGES = 10_000  # ranges in one sequence set

_ATOM_STOP = frozenset(b' (){"\r\n[]<')


class ImapSyntaxError(ValueError):
    """A command that does not parse; the text says what is wrong (tagged BAD)."""


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom, a number, a flag, a sequence set or a FETCH item with its section and partial."""

    text: str
    section: tuple[Value, ...] | None = None
    partial: tuple[int, int | None] | None = None  # <start> or <start.count>

    @property
    def upper(self) -> str:
        return self.text.upper()


Value = Atom | bytes | list["Value"]


@dataclass(frozen=True, slots=True)
class Command:
    """One command's text (lines joined, line ends removed) and its literals by position."""

    text: bytes
    literals: dict[int, tuple[int, bytes]]  # offset of "{" (or "~") → (offset after "}", octets)


class Tokenizer:
    """Reads values from a ``Command`` left to right."""

    def __init__(self, command: Command, start: int = 0) -> None:
        self.text = command.text
        self.literals = command.literals
        self.pos = start
        self.count = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> int | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def space(self) -> None:
        if self.peek() != 0x20:
            raise ImapSyntaxError("expected a space" if not self.at_end() else "missing argument")
        self.pos += 1

    def maybe_space(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        if not self.at_end():
            raise ImapSyntaxError("unexpected text after the arguments")

    def value(self, depth: int = 0) -> Value:
        self.count += 1
        if self.count > MAX_VALUES:
            raise ImapSyntaxError(f"too many values (at most {MAX_VALUES})")
        c = self.peek()
        if c is None:
            raise ImapSyntaxError("missing argument")
        if c == 0x28:  # (
            return self._list(depth + 1, 0x29)
        if c == 0x22:  # "
            return self._quoted()
        if c in (0x7B, 0x7E):  # { or ~
            literal = self.literals.get(self.pos)
            if literal is None:
                raise ImapSyntaxError("a literal is announced only at the end of a line")
            self.pos, octets = literal
            return octets
        return self._atom(depth)

    def values_to_end(self) -> list[Value]:
        out: list[Value] = []
        while not self.at_end():
            out.append(self.value())
            if not self.at_end():
                self.space()
        return out

    def _list(self, depth: int, close: int) -> list[Value]:
        if depth > MAX_DEPTH:
            raise ImapSyntaxError(f"lists nest at most {MAX_DEPTH} deep")
        self.pos += 1
        out: list[Value] = []
        while True:
            c = self.peek()
            if c is None:
                raise ImapSyntaxError("unclosed list")
            if c == close:
                self.pos += 1
                return out
            if out:
                self.space()
                if self.peek() == close:  # a space before ")" is tolerated
                    continue
            out.append(self.value(depth))

    def _quoted(self) -> bytes:
        text = self.text
        pos = self.pos + 1
        out = bytearray()
        while True:
            if pos >= len(text):
                raise ImapSyntaxError("unterminated quoted string")
            c = text[pos]
            if c == 0x22:
                self.pos = pos + 1
                return bytes(out)
            if c == 0x5C:  # backslash quotes " and \ only
                pos += 1
                if pos >= len(text) or text[pos] not in (0x22, 0x5C):
                    raise ImapSyntaxError('a backslash in a quoted string quotes only " or \\')
                c = text[pos]
            elif c in (0x0D, 0x0A, 0x00):
                raise ImapSyntaxError("CR, LF or NUL in a quoted string")
            out.append(c)
            pos += 1

    def _atom(self, depth: int) -> Atom:
        text = self.text
        start = self.pos
        pos = start
        while pos < len(text) and text[pos] not in _ATOM_STOP:
            pos += 1
        # "]" may end an atom only inside a section: outside, it is part of the atom
        # (rev1's "resp-text-code"-like atoms never reach us; LIST patterns may hold it).
        word = text[start:pos].decode("utf-8", "replace")
        section: tuple[Value, ...] | None = None
        partial: tuple[int, int | None] | None = None
        if pos < len(text) and text[pos] == 0x5B and word:  # [
            self.pos = pos
            section = tuple(self._list(depth + 1, 0x5D))
            pos = self.pos
            if pos < len(text) and text[pos] == 0x3C:  # <
                close = text.find(b">", pos)
                if close < 0 or close - pos > 24:
                    raise ImapSyntaxError("a partial is <start> or <start.count>")
                partial = _partial(text[pos + 1 : close].decode("ascii", "replace"))
                pos = close + 1
        elif not word:
            raise ImapSyntaxError(f"unexpected {chr(text[pos])!r}" if pos < len(text) else "")
        self.pos = pos
        return Atom(word, section, partial)


def _partial(text: str) -> tuple[int, int | None]:
    start, dot, count = text.partition(".")
    if not start.isdigit() or (dot and not count.isdigit()) or len(start) > 10 or len(count) > 10:
        raise ImapSyntaxError("a partial is <start> or <start.count>")
    return int(start), (int(count) if dot else None)


# ---------------------------------------------------------------------------- argument types


def atom(value: Value, what: str) -> str:
    if not isinstance(value, Atom) or value.section is not None:
        raise ImapSyntaxError(f"{what} must be an atom")
    return value.text


def astring(value: Value, what: str) -> str:
    """An atom or a string, as text (UTF-8; RFC 9051 allows it in strings)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ImapSyntaxError(f"{what} is not valid UTF-8") from None
    if isinstance(value, Atom) and value.section is None:
        return value.text
    raise ImapSyntaxError(f"{what} must be an atom or a string")


def number(value: Value, what: str, *, nonzero: bool = False, bits: int = 32) -> int:
    text = value.text if isinstance(value, Atom) else ""
    if text.isascii() and text.isdigit() and len(text) <= 20:
        n = int(text)
        if n < (1 << bits) and (n > 0 or not nonzero):
            return n
    raise ImapSyntaxError(f"{what} must be a number")


def parenthesised(value: Value, what: str) -> list[Value]:
    if not isinstance(value, list):
        raise ImapSyntaxError(f"{what} must be a parenthesised list")
    return value


# ---------------------------------------------------------------------------- sequence sets

STAR = -1  # "*": the largest number in use


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``1:4,7,9:*`` or ``$`` (RFC 9051 §6.4.4.4: the saved search result, not offered)."""

    ranges: tuple[tuple[int, int], ...]  # (low, high) with STAR for "*"

    def resolve(self, largest: int) -> Iterator[tuple[int, int]]:
        """The ranges with "*" replaced by ``largest``, each low ≤ high."""
        for low, high in self.ranges:
            low = largest if low == STAR else low
            high = largest if high == STAR else high
            yield (low, high) if low <= high else (high, low)

    def contains(self, n: int, largest: int) -> bool:
        return any(low <= n <= high for low, high in self.resolve(largest))

    def members(self, candidates: Iterable[int], largest: int) -> list[int]:
        """The candidates (ascending) that the set names."""
        ranges = sorted(self.resolve(largest))
        out = []
        for n in candidates:
            if any(low <= n <= high for low, high in ranges):
                out.append(n)
        return out


_SEQ_NUMBER = re.compile(rb"\*|[1-9][0-9]{0,9}")


def sequence_set(value: Value, what: str = "sequence set") -> SequenceSet:
    if not isinstance(value, Atom) or value.section is not None:
        raise ImapSyntaxError(f"{what} must be a sequence set like 1:4,7")
    parts = value.text.split(",")
    if len(parts) > MAX_SEQUENCE_RANGES:
        raise ImapSyntaxError(f"a sequence set has at most {MAX_SEQUENCE_RANGES} ranges")
    ranges: list[tuple[int, int]] = []
    for part in parts:
        low_text, colon, high_text = part.partition(":")
        low = _seq_number(low_text, what)
        high = _seq_number(high_text, what) if colon else low
        ranges.append((low, high))
    return SequenceSet(tuple(ranges))


def _seq_number(text: str, what: str) -> int:
    if not _SEQ_NUMBER.fullmatch(text.encode()) or (text != "*" and int(text) >= 1 << 32):
        raise ImapSyntaxError(f"{what} must be a sequence set like 1:4,7 (numbers from 1)")
    return STAR if text == "*" else int(text)


def format_sequence(numbers: Iterable[int]) -> str:
    """Ascending numbers as a compact set: 1:3,5,7:8."""
    out: list[str] = []
    start = prev = None
    for n in sorted(set(numbers)):
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}:{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(out)


# ---------------------------------------------------------------------------- dates

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.upper(): i for i, m in enumerate(_MONTHS, 1)}
_DATE_TIME = re.compile(
    r"^ ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})$"
)
_DATE = re.compile(r"^([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})$")


def parse_date_time(text: str) -> float:
    """APPEND's date-time ``"17-Jul-1996 02:44:25 -0700"`` as seconds since the epoch."""
    m = _DATE_TIME.match(text)
    if m is None or m.group(2).upper() not in _MONTH_NUMBER:
        raise ImapSyntaxError('a date-time is like "17-Jul-1996 02:44:25 -0700"')
    day, month, year = int(m.group(1)), _MONTH_NUMBER[m.group(2).upper()], int(m.group(3))
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
    offset = (int(m.group(8)) * 60 + int(m.group(9))) * 60 * (-1 if m.group(7) == "-" else 1)
    try:
        when = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        time.gmtime(when)
    except (ValueError, OverflowError):
        raise ImapSyntaxError("that date-time does not exist") from None
    return float(when - offset)


def parse_date(value: Value) -> tuple[int, int, int]:
    """SEARCH's date ``1-Feb-1994`` (atom or quoted) as (year, month, day)."""
    text = astring(value, "a date")
    m = _DATE.match(text)
    if m is None or m.group(2).upper() not in _MONTH_NUMBER:
        raise ImapSyntaxError("a date is like 1-Feb-1994")
    return int(m.group(3)), _MONTH_NUMBER[m.group(2).upper()], int(m.group(1))


def format_date_time(when: float) -> str:
    """INTERNALDATE as IMAP writes it, in UTC: ``"04-Dec-2026 18:20:00 +0000"``."""
    t = time.gmtime(when)
    return f'"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"'


# ---------------------------------------------------------------------------- output


def quoted(text: str | bytes) -> bytes:
    """A string for a response: quoted when it can be, else a literal."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) < 1024 and not any(c in data for c in b"\r\n\0"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(text: str | bytes | None) -> bytes:
    return b"NIL" if text is None else quoted(text)


def astring_out(text: str) -> bytes:
    """A mailbox name or similar: an atom when it is one, else quoted."""
    data = text.encode("utf-8")
    plain = data and all(0x20 < c < 0x7F and c not in b'(){"\\%*]' for c in data)
    if plain and data.upper() != b"NIL":
        return data
    return quoted(data)


# ---------------------------------------------------------------------------- mailbox names


def decode_mailbox(name: str, utf8: bool) -> str:
    """A mailbox name from a client: modified UTF-7 (RFC 3501 §5.1.3) unless UTF8=ACCEPT is on;
    with it, names are UTF-8 (RFC 9051 §5.1), and a name that looks like modified UTF-7 is still
    decoded only if it decodes cleanly (RFC 6855 §3)."""
    if "&" not in name:
        return name
    try:
        return _mutf7_decode(name)
    except ValueError:
        if utf8:
            return name
        raise ImapSyntaxError("the mailbox name is not valid modified UTF-7") from None


def encode_mailbox(name: str, utf8: bool) -> str:
    if utf8:
        return name
    return _mutf7_encode(name)


def _mutf7_encode(text: str) -> str:
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def _mutf7_decode(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise ValueError("not modified UTF-7")
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i)
        if end < 0:
            raise ValueError("unterminated")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                data = base64.b64decode(b64, validate=True)
                out.append(data.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError("bad base64") from None
        i = end + 1
    return "".join(out)
