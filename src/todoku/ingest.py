"""From accepted bytes to a stored message: trace headers, the header scan, and where mail goes.

``HeaderScan`` holds back the start of the content until the header block is complete (or clearly
absent), so that headers we add (``Received``, and on submission ``Message-ID`` and ``Date`` when
missing, RFC 6409 §8) come first and the rest of the content streams to disk untouched.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
import time
from dataclasses import dataclass

HEADER_SCAN_LIMIT = 256 * 1024  # past this without an empty line, treat the content as body
SUBJECT_LIMIT = 300  # characters of the decoded Subject kept in HeaderFacts
# Octets of the unfolded Subject handed to the standard library's decoder: its time and memory
# grow faster than linearly with the number of encoded words (issue 12). 300 characters sent
# one per encoded word ("=?utf-8?q?=E5=AE=9B?= ", 22 octets each) fit in this.
SUBJECT_SOURCE_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the accept path needs from a header block. ``subject`` is display text: decoded
    (RFC 2047), at most ``SUBJECT_LIMIT`` characters, and without control characters."""

    subject: str
    has_message_id: bool
    has_date: bool
    has_from: bool
    received_count: int


_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_SUBJECT = re.compile(
    rb"^subject:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE
)
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none belongs in a
# one-line display (an encoded word can carry ESC, BEL or CR LF, RFC 2047 §5 forbids none of
# them, and ``todoku mailbox list`` prints the Subject to a terminal).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def scan_headers(block: bytes) -> HeaderFacts:
    """The facts of one header block (untrusted bytes). Never raises on any input."""
    names = [m.group(1).lower() for m in _FIELD.finditer(block)]
    subject = ""
    match = _SUBJECT.search(block)
    if match:
        unfolded = re.sub(rb"\r?\n", b"", match.group(1)).strip()[:SUBJECT_SOURCE_LIMIT]
        raw = unfolded.decode("utf-8", "replace")
        try:
            subject = str(email.header.make_header(email.header.decode_header(raw)))
        except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
            # A bad encoded word: decode_header raises HeaderParseError for bad base64
            # (binascii.Error), LookupError for an unknown charset. Show the field as sent.
            subject = raw
    return HeaderFacts(
        subject=_CONTROL.sub(" ", subject)[:SUBJECT_LIMIT],
        has_message_id=b"message-id" in names,
        has_date=b"date" in names,
        has_from=b"from" in names,
        received_count=names.count(b"received"),
    )


class HeaderScan:
    """Feed content pieces; ``ready`` once the header block is known. Then ``facts`` is set.

    Linear in the content, however it is cut: the pieces are appended to one buffer (no object
    per piece), and each piece is searched for the empty line that ends the header (RFC 5322
    §2.1) together with only the last three octets before it, never the whole of what is held
    (a header sent in one-octet pieces was joined and searched again for every piece: quadratic,
    issue 12). ``octets_searched`` counts that work.
    """

    def __init__(self) -> None:
        self._held = bytearray()
        # The last octets of b"\r\n" + content: with that CRLF in front, content that starts
        # with the empty line (no header at all) is one more match of CRLF CRLF, at offset 0.
        self._tail = b"\r\n"
        self.octets_searched = 0
        self.facts: HeaderFacts | None = None

    def feed(self, piece: bytes) -> bytes | None:
        """Returns the held content once the headers are complete; None while still holding."""
        # Offsets are in b"\r\n" + content. A match that straddles the pieces starts in the tail
        # (at most three octets, so a match cannot lie in it alone) and is the earlier one.
        tail = self._tail
        boundary = tail + piece[:3]
        found = boundary.find(b"\r\n\r\n")
        held = self._held
        position = len(held) + 2 - len(tail) + found
        if found < 0:
            found = piece.find(b"\r\n\r\n")
            position = len(held) + 2 + found
        self.octets_searched += len(boundary) + len(piece)
        if found < 0:
            end = -1
            if len(held) + len(piece) < HEADER_SCAN_LIMIT:
                held += piece
                self._tail = (tail + piece[-3:])[-3:]
                return None
        else:
            # The block keeps its last CRLF; at offset 0 the content starts with the empty line.
            end = position - 2 if position else 0
        if held:
            held += piece
            data = bytes(held)
            self._held = bytearray()
        else:
            data = piece  # the usual case: the whole header came in the first piece
        self.facts = scan_headers(data if end < 0 else data[: end + 2])
        return data

    def finish(self) -> bytes:
        """End of content: whatever is held (a message that is all headers, or empty)."""
        data = bytes(self._held)
        self._held = bytearray()
        if self.facts is None:
            self.facts = scan_headers(data)
        return data


_date_cache: tuple[int, str] = (-1, "")


def _received_date(when: float) -> str:
    """The RFC 5322 date of a Received field, formatted once per second: ``formatdate`` with
    local time showed in the SMTP profile at hundreds of messages a second (issue 7)."""
    global _date_cache
    second = int(when)
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, localtime=True))
    return _date_cache[1]


def received_header(
    *,
    helo: str | None,
    client_ip: str,
    client_name: str | None,
    hostname: str,
    protocol: str,
    queue_id: str,
    tls: str,
    user: str | None,
    recipient: str | None,
    when: float | None = None,
) -> bytes:
    """The Received field of RFC 5321 §4.4, with RFC 3848 protocol names and RFC 8314 §4.3 notes."""
    client = f"{client_name} [{client_ip}]" if client_name else f"[{client_ip}]"
    lines = [f"Received: from {helo or 'unknown'} ({client})"]
    if tls:
        lines.append(f"\t(using {tls})")
    if user:
        lines.append(f"\t(Authenticated sender: {user})")
    by = f"\tby {hostname} (todoku) with {protocol} id {queue_id}"
    if recipient:
        lines.append(by)
        lines.append(f"\tfor <{recipient}>; {_received_date(when or time.time())}")
    else:
        lines.append(f"{by}; {_received_date(when or time.time())}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def protocol_name(*, esmtp: bool, tls: bool, auth: bool, smtputf8: bool) -> str:
    """RFC 3848 / RFC 6531 §3.7.4 'with' keywords: SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPSA..."""
    if not esmtp:
        return "SMTP"
    return ("UTF8SMTP" if smtputf8 else "ESMTP") + ("S" if tls else "") + ("A" if auth else "")


def submission_headers(facts: HeaderFacts, hostname: str, queue_id: str) -> bytes:
    out = b""
    if not facts.has_date:
        out += f"Date: {email.utils.formatdate(localtime=False, usegmt=True)}\r\n".encode()
    if not facts.has_message_id:
        out += f"Message-ID: <{queue_id}.{int(time.time())}@{hostname}>\r\n".encode()
    return out
