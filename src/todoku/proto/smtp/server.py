"""The SMTP server core: a sans-I/O state machine.

RFCs: 5321 (SMTP), 1870 (SIZE), 2034 (ENHANCEDSTATUSCODES), 2920 (PIPELINING), 3030 (CHUNKING),
3207 (STARTTLS), 3461 (DSN), 4954 (AUTH), 6152 (8BITMIME), 6531 (SMTPUTF8).

Use: ``receive_data(bytes)`` (``b""`` at end of input), then ``next_event()`` until it returns
``NEED_DATA``; answer each decision event with ``reply()``; write ``data_to_send()`` to the peer
before reading more. PIPELINING needs nothing extra: the core simply keeps reading commands from
its buffer, and the driver sends the collected replies in one write when it next needs data.

DATA content is scanned in large pieces (not line by line): the core looks for the terminator
``<CRLF>.<CRLF>``, removes dot-stuffing with one ``bytes.replace`` per piece, and turns bare CR or
LF into CRLF. Only a real ``<CRLF>.<CRLF>`` ends the content, so a bare ``<LF>.<CR><LF>`` can never
end a message early and smuggle a second one (CVE-2023-51764); and since the stored content has
only CRLF line ends, whatever todoku later relays or serves is dot-stuffed unambiguously.

BDAT (CHUNKING) reuses the DATA vocabulary so that a driver needs nothing new: the first BDAT of a
transaction asks the same ``DataCommand`` decision (a 354 from the driver means "go ahead" and is
not sent), the octets arrive as ``DataChunk`` events with the same bare CR/LF normalisation, and
``BDAT n LAST`` ends with the same ``EndOfData`` decision. A refused BDAT still has its octets
read and thrown away (RFC 3030 §2), so that message content is never taken for commands.
"""

from __future__ import annotations

import base64
import enum
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from todoku.proto import sasl
from todoku.proto.errors import LocalProtocolError
from todoku.proto.framing import TOO_LONG, LineFramer, strip_eol
from todoku.proto.smtp import codes
from todoku.proto.smtp.address import (
    AddressError,
    decode_xtext,
    has_control_character,
    parse_path,
)
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import (
    DECISIONS,
    NEED_DATA,
    PAUSED,
    AuthRequest,
    Closed,
    DataChunk,
    DataCommand,
    EndOfData,
    Event,
    Hello,
    MailFrom,
    MessageTooBig,
    RcptTo,
    Reset,
    StartTLS,
    _Sentinel,
)

COMMAND_LINE_LIMIT = 512  # RFC 5321 §4.5.3.1.4, CRLF included
# Extensions lengthen some commands: MAIL/RCPT carry parameters (RFC 1870 §3, RFC 3461 §5:
# ORCPT alone may be 500 octets) and AUTH carries an initial response (RFC 4954 §4: 12288 octets).
EXTENDED_LINE_LIMIT = {"MAIL": 2048, "RCPT": 2048, "AUTH": 12288}
_LONGEST_COMMAND = max(EXTENDED_LINE_LIMIT.values())
SASL_LINE_LIMIT = 12288  # RFC 4954 §4: the longest response; the line adds its CRLF
QUOTE_LIMIT = 100  # characters of client input a reply quotes back, then "..."
MID_LINE_CHUNK = 65536  # a text line longer than this is passed on in pieces, never truncated
MAX_ORCPT = 500  # RFC 3461 §4.2
MAX_ENVID = 100  # RFC 3461 §4.4
_BDAT_ARGS = re.compile(r"^([0-9]{1,18})(?: +(LAST))?$", re.IGNORECASE)
# Refused in an EHLO/HELO name, which every Received field of the session repeats: C0 and C1
# controls and DEL, the Unicode line and paragraph separators, and the bidirectional marks,
# overrides and isolates (issue 12 attack pass: ESC, BEL and U+2028 reached the header).
_NOT_IN_HELLO = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_ESMTP_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 5321 §4.1.2 esmtp-keyword
# RFC 6533 §3: a utf-8 ORCPT escapes characters as \x{HEX}; those are kept as sent, but one that
# names a control character is refused like +HH xtext that decodes to one (RFC 3461 §4.2).
_UNITEXT_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
# RFC 4954 §6: a SASL response longer than the server's buffer for it ends the exchange.
_SASL_LINE_TOO_LONG = Reply(500, "5.5.6", "Authentication Exchange line is too long")


def _quoted(text: str) -> str:
    """Client input as a reply quotes it: at most ``QUOTE_LIMIT`` characters, so that a reply
    line stays within 512 octets (RFC 5321 §4.5.3.1.5) and names what was wrong."""
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "..."


class State(enum.Enum):
    CONNECTED = "connected"  # greeted, no HELO/EHLO yet
    READY = "ready"  # HELO/EHLO done, no transaction
    MAIL = "mail"  # MAIL accepted
    RCPT = "rcpt"  # at least one RCPT accepted
    DATA = "data"  # receiving DATA content
    BDAT = "bdat"  # between the chunks of a BDAT transaction
    CHUNK = "chunk"  # receiving the octets of one BDAT chunk
    AUTH = "auth"  # inside a SASL exchange
    TLS_PENDING = "tls-pending"  # 220 sent for STARTTLS, waiting for the handshake
    CLOSED = "closed"


_IN_TRANSACTION = (State.MAIL, State.RCPT, State.BDAT)

# Rule: which command is legal in which state lives here, in one place (after h11's _state.py).
# A command that is known but not legal in the current state gets the reply named here.
_NEED_HELO = codes.BAD_SEQUENCE.with_text("Error: send HELO/EHLO first")
_NEED_MAIL = codes.BAD_SEQUENCE.with_text("Error: need MAIL command")
_NEED_RCPT = codes.BAD_SEQUENCE.with_text("Error: need RCPT command")
_NESTED_MAIL = codes.BAD_SEQUENCE.with_text("Error: nested MAIL command")
_IN_PROGRESS = codes.BAD_SEQUENCE.with_text("Error: MAIL transaction in progress")
_NO_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")
# RFC 3030 §2: DATA and BDAT cannot be mixed in one transaction; nor can recipients be added
# once the content has started.
_AFTER_BDAT = codes.BAD_SEQUENCE.with_text("Error: BDAT transaction in progress")
_SEQUENCE: dict[str, dict[State, Reply]] = {
    "MAIL": {
        State.CONNECTED: _NEED_HELO,
        State.MAIL: _NESTED_MAIL,
        State.RCPT: _NESTED_MAIL,
        State.BDAT: _NESTED_MAIL,
    },
    "RCPT": {State.CONNECTED: _NEED_MAIL, State.READY: _NEED_MAIL, State.BDAT: _AFTER_BDAT},
    "DATA": {
        State.CONNECTED: _NEED_RCPT,
        State.READY: _NEED_RCPT,
        State.MAIL: _NO_RECIPIENTS,
        State.BDAT: _AFTER_BDAT,
    },
    "BDAT": {State.CONNECTED: _NEED_RCPT, State.READY: _NEED_RCPT, State.MAIL: _NO_RECIPIENTS},
    "AUTH": {
        State.CONNECTED: _NEED_HELO,
        State.MAIL: _IN_PROGRESS,
        State.RCPT: _IN_PROGRESS,
        State.BDAT: _IN_PROGRESS,
    },
    "STARTTLS": {
        State.CONNECTED: _NEED_HELO,
        State.MAIL: _IN_PROGRESS,
        State.RCPT: _IN_PROGRESS,
        State.BDAT: _IN_PROGRESS,
    },
}
_ALWAYS = {"EHLO", "HELO", "RSET", "NOOP", "QUIT", "VRFY", "HELP", "EXPN"}
_KNOWN = _ALWAYS | set(_SEQUENCE) | {"ETRN", "TURN"}


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What one listener offers; frozen, one per listener (change with ``dataclasses.replace``)."""

    hostname: str
    max_message_size: int = 25 * 1024 * 1024
    tls_available: bool = False  # STARTTLS can be offered
    tls_active: bool = False  # implicit TLS (port 465): already encrypted at the start
    auth_enabled: bool = False
    auth_requires_tls: bool = True  # RFC 8314 §3: no clear-text passwords
    require_tls: bool = False  # refuse mail transactions before STARTTLS
    require_auth: bool = False  # submission: MAIL only after AUTH
    # RFC 8689 (REQUIRETLS): offered on authenticated submission, and only on a TLS session.
    requiretls: bool = False
    max_recipients: int = 1000
    max_errors: int = 20
    greeting: str = "ESMTP todoku"


class ServerConnection:
    """One SMTP session, from greeting to close, without any I/O."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.state = State.CONNECTED
        self.tls_active = settings.tls_active
        self.authenticated_user: str | None = None
        self.helo_name: str | None = None
        self.esmtp = False
        self.smtputf8 = False  # the current transaction declared SMTPUTF8
        self.recipient_count = 0
        self.error_count = 0
        self._lines = LineFramer()
        self._eof = False
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._awaiting: Event | None = None
        self._sasl: sasl.SaslExchange | None = None
        # Content state, shared by DATA and BDAT.
        self._at_line_start = True
        self._line_start_after_crlf = True
        self._data_size = 0
        self._data_too_big = False
        self._bare_newlines = 0
        # BDAT state.
        self._pending_bdat: tuple[int, bool] | None = None  # (size, last) awaiting DataCommand
        self._chunk_size = 0
        self._chunk_remaining = 0
        self._chunk_last = False
        self._held_cr = False  # a CR at a piece's end may pair with an LF in the next piece
        self._discard_octets = 0  # octets of a refused BDAT still to be thrown away
        self._closed_event_sent = False
        self._send(Reply(220, "", f"{settings.hostname} {settings.greeting}"))

    # ----------------------------------------------------------------- driver API

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        if not data:
            self._eof = True
            return
        if self.state is State.TLS_PENDING:
            # RFC 3207 §5 / CVE-2011-0411: nothing sent in clear text after STARTTLS may be used.
            return
        # The framer drops what has been consumed, or a session that never reads a buffer to its
        # very end (a message whose reads end mid-line) would keep the whole message in memory.
        self._lines.feed(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def closing(self) -> bool:
        return self.state is State.CLOSED

    def next_event(self) -> Event | _Sentinel:
        if self._awaiting is not None:
            raise LocalProtocolError(f"reply() needed for {type(self._awaiting).__name__} first")
        while True:
            if self._events:
                event = self._events.popleft()
                if isinstance(event, DECISIONS):
                    self._awaiting = event
                return event
            if self.state is State.CLOSED:
                if not self._closed_event_sent:
                    self._closed_event_sent = True
                    return Closed(by_peer=False)
                return NEED_DATA
            if self.state is State.TLS_PENDING:
                return PAUSED
            if self._discard_octets:
                if not self._discard():
                    return self._need_data()
                continue
            if self.state is State.DATA:
                if not self._scan_data():
                    return self._need_data()
                continue
            if self.state is State.CHUNK:
                if not self._read_chunk():
                    return self._need_data()
                continue
            line = self._read_line()
            if line is None:
                if self.closing:
                    continue  # too many errors while skipping a long line: report Closed
                return self._need_data()
            self._handle_line(line)

    def reply(self, reply: Reply, *, identity: str | None = None) -> None:
        """Answer the decision event returned last by ``next_event()``.

        ``identity`` (AUTH only) is the canonical name of the user who logged in, when it differs
        from the name the client typed (case, for instance).
        """
        event = self._awaiting
        if event is None:
            raise LocalProtocolError("no decision is pending")
        self._awaiting = None
        ok = reply.is_positive
        if isinstance(event, DataCommand) and self._pending_bdat is not None:
            self._answer_first_bdat(reply)
        else:
            self._send(reply)
        if isinstance(event, MailFrom):
            if ok:
                self.state = State.MAIL
                self.smtputf8 = event.smtputf8
            self._count_error(reply)
        elif isinstance(event, RcptTo):
            if ok:
                self.recipient_count += 1
                self.state = State.RCPT
            self._count_error(reply)
        elif isinstance(event, DataCommand):
            if self.state is State.RCPT and reply.code == codes.START_DATA.code:
                self._start_content()
                self.state = State.DATA
            elif not ok:
                self._count_error(reply)
        elif isinstance(event, EndOfData):
            self._end_transaction()
        elif isinstance(event, AuthRequest):
            self.state = State.READY
            if reply.code == codes.AUTH_OK.code:
                self.authenticated_user = identity or event.username
            else:
                self._count_error(reply)
        if reply.code == codes.SHUTTING_DOWN.code:
            self._close()

    def tls_started(self) -> None:
        """The TLS handshake finished: the session starts over (RFC 3207 §4.2)."""
        if self.state is not State.TLS_PENDING:
            raise LocalProtocolError("tls_started() without STARTTLS")
        self.tls_active = True
        self.state = State.CONNECTED
        self.helo_name = None
        self.esmtp = False
        self.authenticated_user = None
        self._reset_transaction()
        self._lines.clear()

    def shutdown(self, reply: Reply = codes.SHUTTING_DOWN) -> None:
        """Say goodbye with a 421 (server stopping, timeout) and close."""
        if self.state is not State.CLOSED:
            # Whatever was still queued would be answered after the goodbye: drop it.
            self._events.clear()
            self._awaiting = None
            self._send(reply)
            self._close()

    # ----------------------------------------------------------------- output helpers

    def _send(self, reply: Reply) -> None:
        self._out.append(reply.to_bytes())

    def _error(self, reply: Reply) -> None:
        self._send(reply)
        self._count_error(reply)

    def _count_error(self, reply: Reply) -> None:
        if reply.code >= 400:  # 4xx and 5xx are the failure classes
            self.error_count += 1
            if self.error_count >= self.settings.max_errors and self.state is not State.CLOSED:
                self._send(codes.TOO_MANY_ERRORS)
                self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._sasl = None

    def _need_data(self) -> Event | _Sentinel:
        if self._eof:
            self._close()
            self._closed_event_sent = True
            return Closed(by_peer=True)
        return NEED_DATA

    # ----------------------------------------------------------------- command lines

    def _read_line(self) -> bytes | None:
        """The next complete line within the line limit, or None when more input is needed.

        The limit applies to the line as sent, line end included, and gives the same answer
        however the line is cut into reads (the framer's rule); a line over it is answered once,
        at its end, by ``_line_too_long``.
        """
        while True:
            line = self._lines.read_line(self._line_limit())
            if line is TOO_LONG:
                self._line_too_long()
                if self.state is State.CLOSED:
                    return None
                continue
            return line

    @property
    def buffered(self) -> int:
        """Octets received and not yet handled (tests and memory checks)."""
        return self._lines.buffered

    def _line_limit(self) -> int:
        """The longest line, line end included, read in the current state: a SASL response
        (RFC 4954 §4) and its CRLF, or the longest command line; ``_handle_line`` then holds
        each command to its own limit (RFC 5321 §4.5.3.1.4)."""
        if self.state is State.AUTH:
            return SASL_LINE_LIMIT + 2
        return _LONGEST_COMMAND

    def _line_too_long(self) -> None:
        if self.state is State.AUTH:
            # RFC 4954 §4, §6: the exchange ends; the next line is a command again.
            self._sasl = None
            self.state = State.READY
            self._error(_SASL_LINE_TOO_LONG)
            return
        self._error(codes.LINE_TOO_LONG)

    def _handle_line(self, raw: bytes) -> None:
        line_bytes = strip_eol(raw)
        if self.state is State.AUTH:
            self._handle_sasl_response(line_bytes)
            return
        if b"\r" in line_bytes or b"\0" in line_bytes:
            self._error(codes.COMMAND_UNRECOGNIZED.with_text("Error: bare <CR> or NUL in command"))
            return
        verb_bytes, _, arg_bytes = line_bytes.strip(b" ").partition(b" ")
        verb = verb_bytes.decode("ascii", "replace").upper()
        limit = EXTENDED_LINE_LIMIT.get(verb, COMMAND_LINE_LIMIT)
        if len(line_bytes) + 2 > limit:  # RFC 5321 §4.5.3.1.4: the limit counts the CRLF
            self._error(codes.LINE_TOO_LONG)
            return
        if verb not in _KNOWN:
            self._error(codes.COMMAND_UNRECOGNIZED)
            return
        try:
            arg = arg_bytes.decode("utf-8").strip(" ")
        except UnicodeDecodeError:
            # RFC 6531 §3.3 allows UTF-8 only; other 8-bit octets are a syntax error, and a
            # refused BDAT still needs its octets skipped (the size is plain ASCII digits).
            if verb == "BDAT":
                self._cmd_bdat(arg_bytes.decode("ascii", "replace").strip(" "))
                return
            self._error(codes.BAD_SYNTAX.with_text("Syntax error: 8-bit octets that are not UTF-8"))
            return
        if verb == "BDAT":
            # The size must be known before any refusal, so that the chunk can be skipped.
            self._cmd_bdat(arg)
            return
        refusal = _SEQUENCE.get(verb, {}).get(self.state)
        if refusal is not None:
            self._error(refusal)
            return
        handler: Callable[[str], None] = getattr(self, f"_cmd_{verb.lower()}")
        handler(arg)

    def _cmd_ehlo(self, arg: str) -> None:
        self._hello(arg, extended=True)

    def _cmd_helo(self, arg: str) -> None:
        self._hello(arg, extended=False)

    def _hello(self, arg: str, *, extended: bool) -> None:
        verb = "EHLO" if extended else "HELO"
        if not arg or " " in arg or _NOT_IN_HELLO.search(arg):
            self._error(codes.BAD_SYNTAX.with_text(f"Syntax: {verb} hostname"))
            return
        # RFC 5321 §4.1.4: EHLO/HELO clears the transaction and the buffers, as RSET does.
        self._drop_transaction()
        self.state = State.READY
        self.helo_name = arg
        self.esmtp = extended
        host = self.settings.hostname
        if not extended:
            self._send(Reply(250, "", host))
        else:
            self._send(Reply(250, "", "\n".join([host, *self._extensions()])))
        self._events.append(Hello(arg, extended))

    def _extensions(self) -> list[str]:
        settings = self.settings
        ext = ["PIPELINING", f"SIZE {settings.max_message_size}"]
        if settings.tls_available and not self.tls_active:
            ext.append("STARTTLS")
        if self._auth_offered():
            ext.append("AUTH " + " ".join(sasl.MECHANISMS))
        ext += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
        if self._requiretls_offered():
            ext.append("REQUIRETLS")
        return ext

    def _requiretls_offered(self) -> bool:
        """RFC 8689 §2: the MAIL parameter is only valid on a session that uses TLS; here
        also only on submission (the listener says so), where the sender has logged in."""
        return self.settings.requiretls and self.tls_active

    def _auth_offered(self) -> bool:
        settings = self.settings
        if not settings.auth_enabled or self.authenticated_user is not None:
            return False
        return self.tls_active or not settings.auth_requires_tls

    def _drop_transaction(self) -> None:
        if self.state in _IN_TRANSACTION:
            self._events.append(Reset())
        self._reset_transaction()

    def _cmd_rset(self, arg: str) -> None:
        if arg:
            self._error(codes.BAD_SYNTAX.with_text("Syntax: RSET"))
            return
        self._drop_transaction()
        if self.state is not State.CONNECTED:
            self.state = State.READY
        self._send(codes.RESET_OK)

    def _cmd_noop(self, arg: str) -> None:
        self._send(codes.OK)

    def _cmd_quit(self, arg: str) -> None:
        self._send(codes.BYE.with_text(f"{self.settings.hostname} closing connection"))
        self._close()

    def _cmd_vrfy(self, arg: str) -> None:
        if not arg:
            self._error(codes.BAD_SYNTAX.with_text("Syntax: VRFY address"))
            return
        self._send(codes.VRFY_CANNOT)

    def _cmd_expn(self, arg: str) -> None:
        self._error(codes.NOT_IMPLEMENTED)

    def _cmd_etrn(self, arg: str) -> None:
        self._error(codes.NOT_IMPLEMENTED)

    def _cmd_turn(self, arg: str) -> None:
        self._error(codes.NOT_IMPLEMENTED)

    def _cmd_help(self, arg: str) -> None:
        self._send(codes.HELP)

    def _cmd_starttls(self, arg: str) -> None:
        if self.tls_active:
            self._error(Reply(554, "5.5.1", "Error: TLS already active"))
            return
        if not self.settings.tls_available:
            self._error(codes.NOT_IMPLEMENTED)
            return
        if arg:
            self._error(codes.BAD_SYNTAX.with_text("Syntax: STARTTLS"))
            return
        self._send(codes.START_TLS)
        self.state = State.TLS_PENDING
        # RFC 3207 §5 / CVE-2011-0411: whatever the client pipelined after STARTTLS was sent in
        # clear text and could have been injected by a man in the middle: drop it.
        self._lines.clear()
        self._events.append(StartTLS())

    def _transaction_gate(self) -> Reply | None:
        settings = self.settings
        if settings.require_tls and not self.tls_active:
            return codes.STARTTLS_FIRST
        if settings.require_auth and self.authenticated_user is None:
            return codes.AUTH_REQUIRED
        return None

    def _cmd_mail(self, arg: str) -> None:
        gate = self._transaction_gate()
        if gate is not None:
            self._error(gate)
            return
        if arg[:5].upper() != "FROM:":
            self._error(codes.BAD_SYNTAX.with_text("Syntax: MAIL FROM:<address>"))
            return
        try:
            path = parse_path(arg[5:], smtputf8=False, allow_null=True)
        except AddressError as exc:
            self._address_error(arg[5:], exc, Reply(501, "5.1.7", "Bad sender address syntax"))
            return
        size: int | None = None
        body: str | None = None
        ret: str | None = None
        envid: str | None = None
        smtputf8 = False
        requiretls = False
        for name, value in path.params.items():
            if name == "SIZE":  # RFC 1870 §6
                if value is None or not value.isdigit() or not value.isascii():
                    self._error(codes.BAD_SYNTAX.with_text("Bad message size syntax"))
                    return
                size = int(value)
                if size > self.settings.max_message_size:
                    # RFC 1870 §6.1: a declared size over the fixed limit gets 552 at once.
                    self._error(codes.MESSAGE_TOO_BIG)
                    return
            elif name == "BODY":  # RFC 6152
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    self._error(codes.PARAM_NOT_IMPLEMENTED.with_text("Unsupported BODY type"))
                    return
                body = value.upper()
            elif name == "SMTPUTF8":  # RFC 6531 §3.4
                if value is not None:
                    self._error(codes.BAD_SYNTAX.with_text("SMTPUTF8 takes no value"))
                    return
                smtputf8 = True
            elif name == "RET":  # RFC 3461 §4.3
                if value is None or value.upper() not in ("FULL", "HDRS"):
                    self._error(codes.BAD_SYNTAX.with_text("Bad RET parameter syntax"))
                    return
                ret = value.upper()
            elif name == "ENVID":  # RFC 3461 §4.4
                why = ""
                try:
                    envid = decode_xtext(value or "")
                except AddressError as exc:
                    # A control character (CR, LF, NUL, ESC...) is refused with the rest: it
                    # would reach the Original-Envelope-Id field of our reports.
                    envid, why = None, f" ({exc})"
                if not value or envid is None or len(value) > MAX_ENVID:
                    self._error(codes.BAD_SYNTAX.with_text(f"Bad ENVID parameter syntax{why}"))
                    return
            elif name == "AUTH":  # RFC 4954 §5: accepted, and trusted only from ourselves
                continue
            elif name == "REQUIRETLS" and self._requiretls_offered():  # RFC 8689 §2, §4.1
                if value is not None:
                    self._error(codes.BAD_SYNTAX.with_text("REQUIRETLS takes no value"))
                    return
                if self.authenticated_user is None:
                    # Only a logged-in sender may ask us to refuse delivery in clear text.
                    self._error(codes.AUTH_REQUIRED)
                    return
                requiretls = True
            else:
                self._error(
                    codes.PARAM_NOT_IMPLEMENTED.with_text(f"Unsupported option: {_quoted(name)}")
                )
                return
        sender = path.address
        if sender is not None and sender.needs_smtputf8 and not smtputf8:
            self._error(codes.NO_SMTPUTF8)
            return
        self._events.append(MailFrom(sender, size, body, smtputf8, ret, envid, requiretls))

    def _address_error(self, arg: str, exc: AddressError, reply: Reply) -> None:
        if exc.needs_smtputf8:
            self._error(codes.NO_SMTPUTF8)  # RFC 6531 §3.5
        elif exc.bad_parameters:
            why = _quoted(str(exc))
            self._error(codes.BAD_SYNTAX.with_text(f"Syntax error in parameters ({why})"))
        else:
            quoted, why = _quoted(arg.strip()), _quoted(str(exc))
            self._error(reply.with_text(f"{quoted}: {reply.text} ({why})"))

    def _cmd_rcpt(self, arg: str) -> None:
        gate = self._transaction_gate()
        if gate is not None:
            self._error(gate)
            return
        if arg[:3].upper() != "TO:":
            self._error(codes.BAD_SYNTAX.with_text("Syntax: RCPT TO:<address>"))
            return
        try:
            path = parse_path(arg[3:], smtputf8=self.smtputf8, allow_null=False)
        except AddressError as exc:
            self._address_error(arg[3:], exc, Reply(501, "5.1.3", "Bad recipient address syntax"))
            return
        if path.address is None:  # parse_path refuses <> here; kept for the type checker
            self._error(Reply(501, "5.1.3", "Bad recipient address syntax"))
            return
        notify: tuple[str, ...] = ()
        orcpt: str | None = None
        for name, value in path.params.items():
            if name == "NOTIFY":  # RFC 3461 §4.1
                words = tuple(w.upper() for w in (value or "").split(","))
                valid = {"SUCCESS", "FAILURE", "DELAY"}
                if words != ("NEVER",) and not (words and set(words) <= valid):
                    self._error(codes.BAD_SYNTAX.with_text("Bad NOTIFY parameter syntax"))
                    return
                notify = words
            elif name == "ORCPT":  # RFC 3461 §4.2
                addr_type, semi, xtext = (value or "").partition(";")
                why = ""
                try:
                    decoded = decode_xtext(xtext)
                except AddressError as exc:
                    # As ENVID: a control character would reach Original-Recipient.
                    decoded, why = "", f" ({exc})"
                if addr_type.lower() == "utf-8" and any(
                    int(hexpoint, 16) > 0x10FFFF or has_control_character(chr(int(hexpoint, 16)))
                    for hexpoint in _UNITEXT_ESCAPE.findall(decoded)
                ):
                    decoded, why = "", " (Control character in xtext)"
                if (
                    not semi
                    or not _ESMTP_KEYWORD.match(addr_type)
                    or not decoded
                    or len(value or "") > MAX_ORCPT
                ):
                    self._error(codes.BAD_SYNTAX.with_text(f"Bad ORCPT parameter syntax{why}"))
                    return
                orcpt = f"{addr_type.lower()};{decoded}"
            else:
                self._error(
                    codes.PARAM_NOT_IMPLEMENTED.with_text(f"Unsupported option: {_quoted(name)}")
                )
                return
        if self.recipient_count >= self.settings.max_recipients:
            self._error(codes.TOO_MANY_RECIPIENTS)
            return
        self._events.append(RcptTo(path.address, notify, orcpt))

    def _cmd_data(self, arg: str) -> None:
        if arg:
            self._error(codes.BAD_SYNTAX.with_text("Syntax: DATA"))
            return
        self._events.append(DataCommand())

    # ----------------------------------------------------------------- AUTH (RFC 4954)

    def _cmd_auth(self, arg: str) -> None:
        settings = self.settings
        if not settings.auth_enabled:
            self._error(codes.BAD_SEQUENCE.with_text("Error: authentication not enabled"))
            return
        if settings.auth_requires_tls and not self.tls_active:
            self._error(codes.STARTTLS_FIRST)
            return
        if self.authenticated_user is not None:
            # RFC 4954 §4: AUTH after a successful AUTH is a bad sequence.
            self._error(codes.BAD_SEQUENCE.with_text("Error: already authenticated"))
            return
        mechanism, _, initial_text = arg.partition(" ")
        if not mechanism:
            self._error(codes.BAD_SYNTAX.with_text("Syntax: AUTH mechanism [initial-response]"))
            return
        if mechanism.upper() not in sasl.MECHANISMS:
            self._error(codes.AUTH_MECHANISM_UNKNOWN)
            return
        exchange = sasl.SaslExchange(mechanism)
        try:
            initial = sasl.decode_response(initial_text) if initial_text else None
            step = exchange.start(initial)
        except sasl.SaslError as exc:
            self._error(Reply(501, "5.5.2", f"Error: {exc}"))
            return
        self._sasl = exchange
        self._sasl_result(step)

    def _handle_sasl_response(self, line: bytes) -> None:
        exchange = self._sasl
        if exchange is None:  # cannot happen: State.AUTH is entered with an exchange
            raise LocalProtocolError("SASL response without an exchange")
        if line.strip() == b"*":  # RFC 4954 §4: the client cancels, and gets a 501
            self._sasl = None
            self.state = State.READY
            self._error(codes.AUTH_CANCELLED)
            return
        try:
            step = exchange.step(sasl.decode_response(line.decode("ascii", "replace")))
        except sasl.SaslError as exc:
            self._sasl = None
            self.state = State.READY
            self._error(Reply(501, "5.5.2", f"Error: {exc}"))
            return
        self._sasl_result(step)

    def _sasl_result(self, step: sasl.Challenge | sasl.Credentials) -> None:
        if isinstance(step, sasl.Challenge):
            self.state = State.AUTH
            self._send(Reply(334, "", base64.b64encode(step.data).decode("ascii")))
            return
        self._sasl = None
        self.state = State.READY
        self._events.append(AuthRequest(step.mechanism, step.username, step.password, step.authzid))

    # ----------------------------------------------------------------- DATA content

    def _start_content(self) -> None:
        self._at_line_start = True
        self._line_start_after_crlf = True
        self._data_size = 0
        self._data_too_big = False
        self._bare_newlines = 0
        self._held_cr = False

    def _scan_data(self) -> bool:
        """Move content from the buffer to events; False when more input is needed."""
        lines = self._lines
        if self._at_line_start and self._line_start_after_crlf and lines.startswith(b".\r\n"):
            lines.skip(3)
            self._finish_data()
            return True
        # RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends the content; bare LF or CR never does.
        end = lines.find(b"\r\n.\r\n")
        if end >= 0:
            self._emit_text(lines.take(end + 2))
            lines.skip(3)
            self._finish_data()
            return True
        last_lf = lines.rfind(b"\n")
        if last_lf >= 0:
            # A piece ending in CRLF is safe to pass on: a terminator that follows is found by
            # the line-start check above on the next call.
            self._emit_text(lines.take(last_lf + 1))
            return True
        available = lines.buffered
        if available > MID_LINE_CHUNK:
            # A CR at the end may pair with a later LF: keep it for the next piece.
            self._emit_text(lines.take(available - 1 if lines.endswith(b"\r") else available))
            return True
        return False

    def _emit_text(self, piece: bytes) -> None:
        """Pass on one piece of DATA content: normalise line ends, then undo dot-stuffing."""
        if not piece:
            return
        ends_line = piece.endswith(b"\n")
        # Only a CRLF can start the terminator; a piece never ends inside a CRLF.
        self._line_start_after_crlf = piece.endswith(b"\r\n")
        if not self._data_too_big:  # once refused, only the terminator matters
            piece = self._normalise(piece)
            if self._at_line_start and piece.startswith(b"."):
                piece = piece[1:]  # RFC 5321 §4.5.2: remove the leading dot of a stuffed line
            self._deliver(piece.replace(b"\r\n.", b"\r\n"))
        self._at_line_start = ends_line

    def _normalise(self, piece: bytes) -> bytes:
        """Turn bare CR and bare LF into CRLF, counting them (one C-level pass when clean)."""
        crlf = piece.count(b"\r\n")
        cr = piece.count(b"\r")
        lf = piece.count(b"\n")
        if cr != crlf or lf != crlf:
            self._bare_newlines += cr + lf - 2 * crlf
            # Every line end (CRLF, bare CR, bare LF) becomes one LF, then each LF a CRLF:
            # three C-level passes instead of a regular expression, which is ten times slower.
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        return piece

    def _deliver(self, piece: bytes) -> None:
        if not piece or self._data_too_big:
            return
        self._data_size += len(piece)
        if self._data_size > self.settings.max_message_size:
            self._data_too_big = True
            self._events.append(MessageTooBig())
            return
        self._events.append(DataChunk(piece))

    def _finish_data(self) -> None:
        self.state = State.READY
        if self._data_too_big:
            self._error(codes.MESSAGE_TOO_BIG)
            self._end_transaction()
            return
        self._events.append(EndOfData(self._data_size, self._bare_newlines))

    def _end_transaction(self) -> None:
        self._events.append(Reset())
        self._reset_transaction()
        if self.state is not State.CLOSED:
            self.state = State.READY

    def _reset_transaction(self) -> None:
        self.recipient_count = 0
        self.smtputf8 = False
        self._pending_bdat = None
        self._chunk_remaining = 0
        self._held_cr = False

    # ----------------------------------------------------------------- BDAT (RFC 3030)

    def _cmd_bdat(self, arg: str) -> None:
        match = _BDAT_ARGS.match(arg)
        if match is None:
            # Without a size the chunk cannot be skipped; what follows is read as commands.
            self._error(codes.BAD_SYNTAX.with_text("Syntax: BDAT size [LAST]"))
            return
        size = int(match.group(1))
        last = match.group(2) is not None
        refusal = _SEQUENCE["BDAT"].get(self.state)
        if refusal is not None:
            # RFC 3030 §2: a refused chunk's octets are still read, and thrown away.
            self._discard_octets = size
            self._error(refusal)
            return
        if self._data_size_so_far() + size > self.settings.max_message_size:
            self._refuse_bdat(codes.MESSAGE_TOO_BIG, size)
            return
        if self.state is State.RCPT:
            # The first chunk asks the driver, like DATA does; the chunk waits in the buffer.
            self._pending_bdat = (size, last)
            self._events.append(DataCommand())
            return
        self._begin_chunk(size, last)

    def _data_size_so_far(self) -> int:
        return self._data_size if self.state is State.BDAT else 0

    def _refuse_bdat(self, reply: Reply, size: int) -> None:
        """Answer a BDAT with a failure: skip its octets and fail the whole transaction.

        RFC 3030 §2: after a failed BDAT the client sends no more chunks, and any it had already
        pipelined are answered 503 (no transaction) and skipped, never started afresh.
        """
        self._discard_octets = size
        self._error(reply)
        self._end_transaction()

    def _answer_first_bdat(self, reply: Reply) -> None:
        pending = self._pending_bdat
        self._pending_bdat = None
        if pending is None:
            raise LocalProtocolError("no BDAT is pending")
        size, last = pending
        if reply.code == codes.START_DATA.code and self.state is State.RCPT:
            # The driver said "go ahead"; BDAT has no 354 (RFC 3030 §2), so nothing is sent.
            self._start_content()
            self._begin_chunk(size, last)
            return
        if reply.is_positive:
            raise LocalProtocolError("BDAT needs 354 (go ahead) or a failure reply")
        self._discard_octets = size
        self._send(reply)
        self._end_transaction()

    def _begin_chunk(self, size: int, last: bool) -> None:
        self.state = State.CHUNK
        self._chunk_size = size
        self._chunk_remaining = size
        self._chunk_last = last
        if size == 0:
            self._finish_chunk()

    def _read_chunk(self) -> bool:
        """Pass on chunk octets from the buffer; False when more input is needed."""
        piece = self._lines.take(self._chunk_remaining)
        if not piece:
            return False
        self._chunk_remaining -= len(piece)
        self._emit_octets(piece, final=self._chunk_remaining == 0 and self._chunk_last)
        if self._chunk_remaining == 0:
            self._finish_chunk()
        return True

    def _emit_octets(self, piece: bytes, *, final: bool) -> None:
        """Pass on BDAT octets as they are, save for bare CR/LF, normalised as for DATA."""
        if self._held_cr:
            piece = b"\r" + piece
            self._held_cr = False
        if not final and piece.endswith(b"\r"):
            # The LF that makes this CR a line end may come in the next read or the next chunk.
            piece = piece[:-1]
            self._held_cr = True
        if self._data_too_big or not piece:
            return
        self._deliver(self._normalise(piece))

    def _finish_chunk(self) -> None:
        if self._chunk_last:
            self._emit_octets(b"", final=True)  # a CR held from an earlier chunk is bare
            self.state = State.READY
            if self._data_too_big:
                self._error(codes.MESSAGE_TOO_BIG)
                self._end_transaction()
                return
            self._events.append(EndOfData(self._data_size, self._bare_newlines))
            return
        if self._data_too_big:
            self.state = State.READY
            self._error(codes.MESSAGE_TOO_BIG)
            self._end_transaction()
            return
        self.state = State.BDAT
        self._send(Reply(250, "2.0.0", f"Ok: {self._chunk_size} octets received"))

    def _discard(self) -> bool:
        """Throw away the octets of a refused BDAT chunk; False when more input is needed."""
        dropped = self._lines.skip(self._discard_octets)
        self._discard_octets -= dropped
        return dropped > 0
