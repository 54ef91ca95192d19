"""Stored message bytes → the lines RETR and TOP put on the wire (RFC 1939 §3, §7).

The encoder takes the message in pieces of any size and returns wire bytes for each, so a driver
can stream a large message from disk in chunks without holding it in memory. It

- byte-stuffs every line that starts with "." (RFC 1939 §3), also when a line starts exactly at
  a piece boundary;
- sends only CRLF line ends: a bare CR or LF (never written by todoku's SMTP, which normalises,
  but possible in imported mail) becomes CRLF, a CR at the end of a piece is held back until the
  next piece shows whether an LF follows;
- for TOP, passes the header, the empty line and then ``body_lines`` lines of the body, and says
  when it is ``done`` so the driver stops reading;
- ends with CRLF (if the content did not) and the terminating ".".

Pieces are processed with bytes methods, not per line in Python, except for TOP, which reads
only the header and a few lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A whole message in RETR's wire form: CRLF lines, byte-stuffed, with the final ".".

    Made only by ``encode_message``; a driver may make it in a worker thread ahead of the RETR,
    so that answering the RETR is a single append (``ServerConnection.send_message``).
    """

    wire: bytes


def encode_message(content: bytes) -> EncodedMessage:
    """The whole of ``content`` as RETR sends it: the same bytes as ``ContentEncoder`` in pieces."""
    encoder = ContentEncoder()
    return EncodedMessage(encoder.encode(content) + encoder.finish())


class ContentEncoder:
    def __init__(self, body_lines: int | None = None) -> None:
        self._body_lines = body_lines  # None: whole message (RETR)
        self._at_line_start = True
        self._held_cr = False
        self._in_header = True
        self._done = False
        self.octets = 0  # content octets passed on, before byte-stuffing

    @property
    def done(self) -> bool:
        """TOP has sent everything it will send: stop reading the message."""
        return self._done

    def encode(self, piece: bytes) -> bytes:
        if self._done or not piece:
            return b""
        if self._held_cr:
            piece = b"\r" + piece
            self._held_cr = False
        if piece.endswith(b"\r"):
            piece = piece[:-1]
            self._held_cr = True
        if b"\r" in piece or b"\n" in piece:
            crlf = piece.count(b"\r\n")
            if piece.count(b"\r") != crlf or piece.count(b"\n") != crlf:
                piece = _BARE_NEWLINE.sub(b"\r\n", piece)
        if not piece:
            return b""
        if self._body_lines is None:
            return self._stuff(piece)
        return self._top(piece)

    def finish(self) -> bytes:
        """The end of the content: any held CR, a final CRLF if needed, and the terminator."""
        out = b""
        if self._held_cr and not self._done:
            self._held_cr = False
            out = self._stuff(b"\r\n") if self._body_lines is None else self._top(b"\r\n")
        if not self._at_line_start:
            out += b"\r\n"  # RFC 1939 §3: the terminator stands on a line of its own
            self._at_line_start = True
        self._done = True
        return out + b".\r\n"

    def _stuff(self, piece: bytes) -> bytes:
        self.octets += len(piece)
        stuffed = piece.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        self._at_line_start = piece.endswith(b"\n")
        return stuffed

    def _top(self, piece: bytes) -> bytes:
        out = []
        for line in piece.splitlines(keepends=True):
            if self._done:
                break
            if self._in_header:
                if self._at_line_start and line == b"\r\n":
                    self._in_header = False  # the empty line ends the header (RFC 5322 §2.1)
                    out.append(self._stuff(line))
                    if self._body_lines == 0:
                        self._done = True
                    continue
                out.append(self._stuff(line))
                continue
            out.append(self._stuff(line))
            if line.endswith(b"\n"):
                assert self._body_lines is not None
                self._body_lines -= 1
                if self._body_lines <= 0:
                    self._done = True
        return b"".join(out)
