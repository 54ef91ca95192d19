"""One line framer for the protocol cores (SMTP, POP3, IMAP): bounded lines and counted octets.

A core feeds what it receives with ``feed`` and takes from the front with ``read_line`` (a
line up to its LF, within a limit), ``take``/``skip`` (counted octets: a BDAT chunk, an IMAP
literal) or the search helpers (SMTP's DATA scanner). The framer never decodes, never judges a
line's content, and holds at most one unfinished line beyond the limit's worth of octets:

- The limit counts the line as sent, its line end included, and gives the same answer however
  the line is cut into reads: an unfinished line that already reaches the limit (its LF is still
  to come) is dropped as it arrives, a complete line over it is dropped whole, and either way the
  caller hears ``TOO_LONG`` once, at the line's end (issue 12).
- A line ends at LF; whether a CR comes before it is the caller's business (``strip_eol``):
  SMTP and POP3 accept a bare LF as a line end, IMAP does too (RFC 9051 §2.2 asks for CRLF from
  clients; a bare LF costs nothing to accept and nothing can be smuggled through it here because
  the core sees one line at a time).
- What has been taken is dropped at the next ``feed`` (deleting a bytearray's prefix is cheap in
  CPython), so a session that never reads a buffer to its very end keeps nothing it answered.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final, Literal


class _TooLong(enum.Enum):
    TOO_LONG = "too long"


TOO_LONG: Final = _TooLong.TOO_LONG
"""``read_line``'s answer for a line over its limit: the line is gone, answer it once."""

HEAD = 32  # octets of a line an extended limit may look at (its verb and first argument)


def strip_eol(line: bytes) -> bytes:
    """A line without its CRLF (or bare LF)."""
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


class LineFramer:
    """The bytes received and not yet taken, read as bounded lines or counted octets."""

    __slots__ = ("_buf", "_discarding", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._discarding = False  # inside a line already known to be too long

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (after STARTTLS: what came in clear text is not used)."""
        self._buf.clear()
        self._pos = 0
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Octets received and not yet taken."""
        return len(self._buf) - self._pos

    def read_line(
        self, limit: int, extended: Callable[[bytes], int] | None = None
    ) -> bytes | Literal[_TooLong.TOO_LONG] | None:
        """The next line with its line end, ``TOO_LONG``, or None when more input is needed.

        ``limit`` is the longest line in octets, line end included. ``extended``, when given, may
        raise it for one line: it is called with the line's first ``HEAD`` octets only when the
        line is over ``limit`` (so short lines, every hot command, are never looked at), and the
        larger of the two applies; it must decide from those octets alone, so that a line gets
        the same limit complete or unfinished.
        """
        buf = self._buf
        lf = buf.find(b"\n", self._pos)
        if lf < 0:
            if self._pos:
                # Keep only the unfinished line: pipelined input cut in the middle of a line
                # must not pile up behind it (issue 12).
                del buf[: self._pos]
                self._pos = 0
            if self._discarding or (
                len(buf) >= limit and len(buf) >= self._limit(0, limit, extended)
            ):
                # Too long and no end in sight: drop what we have, answer at the line's end.
                self._discarding = True
                buf.clear()
            return None
        start = self._pos
        self._pos = lf + 1
        octets = lf + 1 - start
        if self._discarding or (octets > limit and octets > self._limit(start, limit, extended)):
            self._discarding = False
            return TOO_LONG
        return bytes(buf[start : lf + 1])

    def _limit(self, start: int, limit: int, extended: Callable[[bytes], int] | None) -> int:
        if extended is None:
            return limit
        return max(limit, extended(bytes(self._buf[start : start + HEAD])))

    # ----------------------------------------------------------------- counted octets

    def take(self, count: int) -> bytes:
        """Up to ``count`` octets from the front (fewer when fewer have arrived)."""
        start = self._pos
        end = min(len(self._buf), start + count)
        self._pos = end
        return bytes(self._buf[start:end])

    def take_exactly(self, count: int) -> bytes | None:
        """``count`` octets from the front, or None (nothing taken) until they have all arrived.

        The caller bounds ``count`` before asking (an IMAP literal's announced size)."""
        if len(self._buf) - self._pos < count:
            return None
        return self.take(count)

    def skip(self, count: int) -> int:
        """Drop up to ``count`` octets from the front; how many were dropped."""
        start = self._pos
        self._pos = min(len(self._buf), start + count)
        return self._pos - start

    # ----------------------------------------------------------------- looking ahead

    def find(self, sub: bytes) -> int:
        """Where ``sub`` starts, counted from the front, or -1."""
        at = self._buf.find(sub, self._pos)
        return at - self._pos if at >= 0 else -1

    def rfind(self, sub: bytes) -> int:
        """Where the last ``sub`` starts, counted from the front, or -1."""
        at = self._buf.rfind(sub, self._pos)
        return at - self._pos if at >= 0 else -1

    def startswith(self, prefix: bytes) -> bool:
        return self._buf.startswith(prefix, self._pos)

    def endswith(self, suffix: bytes) -> bool:
        """Whether the buffered octets end with ``suffix`` (a CR that may pair with a later LF)."""
        return self.buffered >= len(suffix) and self._buf.endswith(suffix)
