"""The POP3 server core: a sans-I/O state machine (RFC 1939, 2449, 2595, 3206, 5034).

Use: ``receive_data(bytes)`` (``b""`` at end of input), then ``next_event()`` until it returns
``NEED_DATA``; answer each decision event (see ``events``); write ``data_to_send()`` to the peer
before reading more. Pipelined commands (RFC 2449 §6.6) need nothing extra: the core keeps
reading commands from its buffer and the driver sends the collected responses in one write.

The core keeps the session's view of the maildrop (the scan listing fixed at login, RFC 1939 §4,
and the deletion marks), so STAT, LIST, UIDL, DELE, RSET and NOOP are answered here without the
driver. Deletion marks live only in this object: a connection that ends without QUIT leaves
them behind and deletes nothing (RFC 1939 §6).
"""

from __future__ import annotations

import base64
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from todoku.proto import sasl
from todoku.proto.errors import LocalProtocolError
from todoku.proto.framing import TOO_LONG, LineFramer, strip_eol
from todoku.proto.pop3 import replies
from todoku.proto.pop3.content import ContentEncoder, EncodedMessage
from todoku.proto.pop3.events import (
    NEED_DATA,
    PAUSED,
    Closed,
    Event,
    LoginRequest,
    MaildropEntry,
    Retrieve,
    StartTLS,
    Update,
    _Sentinel,
)
from todoku.proto.pop3.replies import CODE_AUTH, Reply, err, ok

COMMAND_LINE_LIMIT = 255  # RFC 2449 §4: a command line is at most 255 octets, CRLF included
# RFC 5034 §4: SASL responses (and an AUTH line carrying an initial response) are not bound by the
# 255-octet limit; this is the bound SMTP AUTH uses too (RFC 4954 §4).
SASL_LINE_LIMIT = 12288
MAX_ERRORS = 20


def _auth_line_limit(head: bytes) -> int:
    """A command line is at most 255 octets (RFC 2449 §4); an AUTH command carrying an initial
    response up to SASL_LINE_LIMIT (RFC 5034 §4). Only the line's first octets decide, so a line
    too long for 255 octets gets the same limit complete or unfinished."""
    if head.lstrip(b" ")[:5].upper() == b"AUTH ":
        return SASL_LINE_LIMIT
    return COMMAND_LINE_LIMIT


class State(enum.Enum):
    AUTHORIZATION = "authorization"  # RFC 1939 §4
    SASL = "sasl"  # inside an AUTH exchange (RFC 5034)
    LOGIN_PENDING = "login-pending"  # waiting for the driver to check credentials
    TLS_PENDING = "tls-pending"  # +OK sent for STLS, waiting for the handshake
    TRANSACTION = "transaction"  # RFC 1939 §5
    SENDING = "sending"  # RETR/TOP content is being sent
    UPDATE = "update"  # QUIT received, waiting for the driver to remove messages (RFC 1939 §6)
    CLOSED = "closed"


_AUTHORIZATION_ONLY = {"USER", "PASS", "AUTH", "STLS", "APOP"}
_TRANSACTION_ONLY = {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST"}
_ANY_STATE = {"QUIT", "CAPA"}
# Rule: which command is legal in which state lives here, in one place (after h11's _state.py).
_LEGAL: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset(_AUTHORIZATION_ONLY | _ANY_STATE),
    State.TRANSACTION: frozenset(_TRANSACTION_ONLY | _ANY_STATE),
}
_KNOWN = _AUTHORIZATION_ONLY | _TRANSACTION_ONLY | _ANY_STATE
_WRONG_STATE = {
    State.AUTHORIZATION: "{verb} is only valid after login; log in with USER/PASS or AUTH first",
    State.TRANSACTION: "{verb} is only valid before login; you are already logged in",
}

# The commands a client sends once per message (RFC 1939 §5). A line "VERB n" naming a live
# message is dispatched without decoding, regex or the general checks below: everything those
# would reject (bad number, deleted message, wrong state, odd spacing) takes the general path,
# which gives the same answers as before.
_NUMBERED_FAST = frozenset({b"RETR", b"DELE", b"UIDL", b"LIST"})
_BARE_FAST = {b"STAT": "_cmd_stat", b"NOOP": "_cmd_noop"}

_TOO_LONG = err("Command line too long (the limit is 255 octets)")
_TOO_MANY_ERRORS = err("Too many errors; closing the connection")
_PRIVACY = err(
    "Credentials are refused on an unencrypted connection: use STLS first or connect to the"
    " POP3S port (995)",
    CODE_AUTH,
)  # RFC 2595 §4, RFC 8314 §3: no clear-text passwords on the network


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What one listener offers; frozen, one per listener."""

    hostname: str
    tls_available: bool = False  # STLS can be offered
    tls_active: bool = False  # implicit TLS (port 995)
    plaintext_login_allowed: bool = False  # credentials accepted without TLS (loopback opt-in)
    implementation: str = "todoku"


class ServerConnection:
    """One POP3 session, from greeting to close, without any I/O."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.state = State.AUTHORIZATION
        self.tls_active = settings.tls_active
        self.authenticated_user: str | None = None
        self.error_count = 0
        self.maildrop: tuple[MaildropEntry, ...] = ()
        self.deleted: set[int] = set()  # message numbers (1-based) marked by DELE
        self._user: str | None = None  # name given by USER, waiting for PASS
        self._sasl: sasl.SaslExchange | None = None
        self._lines = LineFramer()
        self._eof = False
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._awaiting: Event | None = None
        self._encoder: ContentEncoder | None = None
        self._updated = False
        self._closed_event_sent = False
        # RFC 1939 §4: the greeting is a positive response. No APOP timestamp: APOP is not offered.
        self._send(ok(f"{settings.hostname} POP3 server ready"))

    # ----------------------------------------------------------------- driver API

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        if not data:
            self._eof = True
            return
        if self.state is State.TLS_PENDING:
            # RFC 2595 §4 / CVE-2011-0411: nothing sent in clear text after STLS may be used.
            return
        self._lines.feed(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def closing(self) -> bool:
        return self.state is State.CLOSED

    @property
    def updated(self) -> bool:
        """The UPDATE state completed: the deletions of this session were applied."""
        return self._updated

    def next_event(self) -> Event | _Sentinel:
        if self._awaiting is not None:
            raise LocalProtocolError(
                f"an answer to {type(self._awaiting).__name__} is needed first"
            )
        while True:
            if self._events:
                event = self._events.popleft()
                if isinstance(event, (LoginRequest, Retrieve, Update)):
                    self._awaiting = event
                return event
            if self.state is State.CLOSED:
                if not self._closed_event_sent:
                    self._closed_event_sent = True
                    return Closed(by_peer=False, updated=self._updated)
                return NEED_DATA
            if self.state is State.TLS_PENDING:
                return PAUSED
            line = self._read_line()
            if line is None:
                return self._need_data()
            self._handle_line(line)

    def accept_login(self, user: str, maildrop: Sequence[MaildropEntry]) -> None:
        """The credentials are good and the maildrop is open and locked for this session."""
        self._take(LoginRequest)
        self.authenticated_user = user
        self.maildrop = tuple(maildrop)
        self.deleted = set()
        self.state = State.TRANSACTION
        count, octets = self._totals()
        self._send(ok(f"Logged in as {user}: {count} messages ({octets} octets)"))

    def refuse(self, reply: Reply, *, close: bool = False) -> None:
        """Answer the pending decision with ``-ERR``; ``close`` ends the session after it."""
        if reply.ok:
            raise LocalProtocolError("refuse() needs a -ERR reply")
        event = self._take(LoginRequest, Retrieve, Update)
        self._send(reply)
        if isinstance(event, LoginRequest):
            self.state = State.AUTHORIZATION
            self._count_error()
        elif isinstance(event, Retrieve):
            self.state = State.TRANSACTION
        else:
            # RFC 1939 §6: if removing fails, say so, and the session ends without an update.
            close = True
        if close:
            self._close()

    def begin_content(self) -> None:
        """Send the +OK of RETR/TOP; content follows with ``send_content``."""
        event = self._take(Retrieve)
        assert isinstance(event, Retrieve)
        self._awaiting = event  # still answering it until end_content()
        if event.body_lines is None:
            # The same line as ok(f"{size} octets"), built directly: it is sent for every RETR.
            self._out.append(b"+OK %d octets\r\n" % event.entry.size)
        else:
            self._send(ok(f"top of message {event.number} follows"))
        self._encoder = ContentEncoder(event.body_lines)
        self.state = State.SENDING

    def send_message(self, message: EncodedMessage) -> None:
        """Answer the pending RETR with a whole message encoded beforehand (``encode_message``).

        The same bytes as ``begin_content``, ``send_content`` and ``end_content`` would send,
        with none of the per-message work left for the moment the client waits for them."""
        event = self._take(Retrieve)
        assert isinstance(event, Retrieve)
        if event.body_lines is not None:
            self._awaiting = event
            raise LocalProtocolError("send_message() answers RETR; TOP needs send_content()")
        # RFC 1939 §5: the +OK of RETR, then the message, then the terminating ".".
        self._out.append(b"+OK %d octets\r\n" % event.entry.size)
        self._out.append(message.wire)
        self.state = State.TRANSACTION

    @property
    def wants_content(self) -> bool:
        """False once TOP has all the lines it needs: stop reading the message."""
        return self._encoder is not None and not self._encoder.done

    def send_content(self, piece: bytes) -> None:
        if self._encoder is None:
            raise LocalProtocolError("send_content() outside RETR/TOP")
        encoded = self._encoder.encode(piece)
        if encoded:
            self._out.append(encoded)

    def end_content(self) -> None:
        if self._encoder is None:
            raise LocalProtocolError("end_content() outside RETR/TOP")
        self._out.append(self._encoder.finish())
        self._encoder = None
        self._awaiting = None
        self.state = State.TRANSACTION

    def finish_update(self) -> None:
        """The marked messages are removed: say goodbye (RFC 1939 §6) and close."""
        event = self._take(Update)
        assert isinstance(event, Update)
        self._updated = True
        self._send(
            ok(
                f"{self.settings.hostname} POP3 server signing off ({event.remaining} messages left)"
            )
        )
        self._close()

    def tls_started(self) -> None:
        """The TLS handshake finished: the session starts over in AUTHORIZATION (RFC 2595 §4)."""
        if self.state is not State.TLS_PENDING:
            raise LocalProtocolError("tls_started() without STLS")
        self.tls_active = True
        self.state = State.AUTHORIZATION
        self._user = None
        self._lines.clear()

    def shutdown(self, reply: Reply = replies.SHUTTING_DOWN) -> None:
        """Say goodbye with -ERR (server stopping, idle timeout) and close without an update."""
        if self.state is not State.CLOSED:
            if self._encoder is None:  # never inside a multi-line response
                self._send(reply)
            self._encoder = None
            self._awaiting = None
            self._close()

    # ----------------------------------------------------------------- helpers

    def _take(self, *kinds: type) -> Event:
        event = self._awaiting
        if event is None or not isinstance(event, kinds):
            wanted = "/".join(k.__name__ for k in kinds)
            raise LocalProtocolError(f"no {wanted} decision is pending")
        self._awaiting = None
        return event

    def _send(self, reply: Reply) -> None:
        self._out.append(reply.to_bytes())

    def _error(self, reply: Reply) -> None:
        self._send(reply)
        self._count_error()

    def _count_error(self) -> None:
        self.error_count += 1
        if self.error_count >= MAX_ERRORS and self.state is not State.CLOSED:
            self._send(_TOO_MANY_ERRORS)
            self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._sasl = None
        self._user = None

    def _need_data(self) -> Event | _Sentinel:
        if self._eof:
            self._close()
            self._closed_event_sent = True
            return Closed(by_peer=True, updated=False)
        return NEED_DATA

    def _totals(self) -> tuple[int, int]:
        live = [e for n, e in enumerate(self.maildrop, 1) if n not in self.deleted]
        return len(live), sum(e.size for e in live)

    # ----------------------------------------------------------------- command lines

    def _read_line(self) -> bytes | None:
        """The next complete line within its limit, or None when more input is needed.

        The limit counts the line as sent, line end included, and is decided the same way
        however the line is cut into reads (the framer's rule, issue 12); a line over it is
        answered once, at its end.
        """
        while True:
            if self.state is State.SASL:
                line = self._lines.read_line(SASL_LINE_LIMIT)
            else:
                line = self._lines.read_line(COMMAND_LINE_LIMIT, _auth_line_limit)
            if line is not TOO_LONG:
                return line
            if self.state is State.SASL:
                self._end_sasl()  # RFC 5034 §4: the exchange fails; commands follow
            self._error(_TOO_LONG)
            if self.state is State.CLOSED:
                return None

    @property
    def buffered(self) -> int:
        """Octets received and not yet answered: at most one unfinished line, or a pipelined
        batch until it has been read (tests and memory checks)."""
        return self._lines.buffered

    def _handle_line(self, raw: bytes) -> None:
        body = strip_eol(raw)
        if self.state is State.TRANSACTION and self._fast_command(body):
            return
        if self.state is State.SASL:
            self._handle_sasl_response(body)
            return
        if b"\r" in body or b"\0" in body:
            self._error(err("Bare <CR> or NUL in command line"))
            return
        try:
            line = body.decode("utf-8")
        except UnicodeDecodeError:
            self._error(err("Command line is not valid UTF-8"))
            return
        verb, _, arg = line.strip(" ").partition(" ")
        verb = verb.upper()
        octets = len(body) + 2
        if octets > (SASL_LINE_LIMIT if verb == "AUTH" else COMMAND_LINE_LIMIT):
            self._error(_TOO_LONG)
            return
        if verb not in _KNOWN:
            shown = verb if verb.isascii() and verb.isalnum() and len(verb) <= 10 else ""
            self._error(err(f"Unknown command{': ' + shown if shown else ''}"))
            return
        if verb not in _LEGAL[self.state]:
            self._error(err(_WRONG_STATE[self.state].format(verb=verb)))
            return
        getattr(self, f"_cmd_{verb.lower()}")(arg.strip(" "))

    # ----------------------------------------------------------------- any state

    def _capabilities(self) -> list[str]:
        """RFC 2449 §5: what this session offers now (the list changes with state and TLS)."""
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self._login_allowed():
                caps.append("USER")
                caps.append("SASL " + " ".join(sasl.MECHANISMS))
            if self.settings.tls_available and not self.tls_active:
                caps.append("STLS")
        caps.append(f"IMPLEMENTATION {self.settings.implementation}")
        return caps

    def _cmd_capa(self, arg: str) -> None:
        if arg:
            self._error(err("Syntax: CAPA (no arguments)"))
            return
        self._send(ok("Capability list follows", tuple(self._capabilities())))

    def _cmd_quit(self, arg: str) -> None:
        if arg:
            self._error(err("Syntax: QUIT (no arguments)"))
            return
        if self.state is State.AUTHORIZATION:
            # RFC 1939 §4: QUIT before login ends the session; there is nothing to update.
            self._send(ok(f"{self.settings.hostname} POP3 server signing off"))
            self._close()
            return
        # RFC 1939 §6: QUIT in TRANSACTION enters UPDATE; the deletions happen now and only now.
        self.state = State.UPDATE
        marked = tuple(self.maildrop[n - 1] for n in sorted(self.deleted))
        remaining = len(self.maildrop) - len(marked)
        self._events.append(Update(marked, remaining))

    # ----------------------------------------------------------------- AUTHORIZATION

    def _login_allowed(self) -> bool:
        return self.tls_active or self.settings.plaintext_login_allowed

    def _cmd_stls(self, arg: str) -> None:
        if self.tls_active:
            self._error(err("Command not permitted when TLS active"))  # RFC 2595 §4
            return
        if not self.settings.tls_available:
            self._error(err("STLS is not available on this server"))
            return
        if arg:
            self._error(err("Syntax: STLS (no arguments)"))
            return
        self._send(ok("Begin TLS negotiation now"))
        self.state = State.TLS_PENDING
        self._user = None
        # Whatever the client pipelined after STLS was sent in clear text: drop it.
        self._lines.clear()
        self._events.append(StartTLS())

    def _cmd_apop(self, arg: str) -> None:
        # APOP needs the clear password stored on the server (RFC 1939 §7); todoku stores hashes.
        self._error(err("APOP is not supported; use USER/PASS or AUTH PLAIN over TLS"))

    def _cmd_user(self, arg: str) -> None:
        if not self._login_allowed():
            self._error(_PRIVACY)
            return
        if not arg or " " in arg:
            self._error(err("Syntax: USER name"))
            return
        self._user = arg
        # The reply never says whether the user exists, so names cannot be probed (RFC 1939 §13).
        self._send(ok("Send your password with PASS"))

    def _cmd_pass(self, arg: str) -> None:
        if not self._login_allowed():
            self._error(_PRIVACY)
            return
        if self._user is None:
            self._error(err("Send USER first (PASS must follow a successful USER)"))
            return
        if not arg:
            self._error(err("Syntax: PASS password"))
            return
        user, self._user = self._user, None
        # RFC 1939 §7: the password is the rest of the line, and may contain spaces.
        self._login(LoginRequest("USER", user, arg))

    def _login(self, request: LoginRequest) -> None:
        self.state = State.LOGIN_PENDING
        self._events.append(request)

    def _cmd_auth(self, arg: str) -> None:
        if not arg:
            # Many clients (Outlook among them) send a bare AUTH to list mechanisms, after the
            # draft that preceded RFC 5034; answering it costs nothing.
            mechanisms = tuple(sasl.MECHANISMS) if self._login_allowed() else ()
            self._send(ok("Supported mechanisms follow", mechanisms))
            return
        if not self._login_allowed():
            self._error(_PRIVACY)
            return
        self._user = None
        mechanism, _, initial_text = arg.partition(" ")
        try:
            exchange = sasl.SaslExchange(mechanism)
            initial = sasl.decode_response(initial_text) if initial_text else None
            step = exchange.start(initial)
        except sasl.SaslError as exc:
            if "Unrecognized" in str(exc):
                self._error(
                    err(f"Unrecognized authentication type; use {' or '.join(sasl.MECHANISMS)}")
                )
            else:
                self._error(err(f"{exc}", CODE_AUTH))
            return
        self._sasl = exchange
        self._sasl_result(step)

    def _handle_sasl_response(self, line: bytes) -> None:
        exchange = self._sasl
        assert exchange is not None
        if line.strip() == b"*":  # RFC 5034 §4: the client cancels the exchange
            self._end_sasl()
            self._error(err("Authentication cancelled"))
            return
        try:
            step = exchange.step(sasl.decode_response(line.decode("ascii", "replace")))
        except sasl.SaslError as exc:
            self._end_sasl()
            self._error(err(f"{exc}", CODE_AUTH))
            return
        self._sasl_result(step)

    def _end_sasl(self) -> None:
        self._sasl = None
        self.state = State.AUTHORIZATION

    def _sasl_result(self, step: sasl.Challenge | sasl.Credentials) -> None:
        if isinstance(step, sasl.Challenge):
            self.state = State.SASL
            # RFC 5034 §4: a challenge is "+ " and the base64 data (an empty one is just "+ ").
            self._out.append(b"+ " + base64.b64encode(step.data) + b"\r\n")
            return
        self._sasl = None
        self._login(LoginRequest(step.mechanism, step.username, step.password, step.authzid))

    # ----------------------------------------------------------------- TRANSACTION

    def _fast_command(self, body: bytes) -> bool:
        """Answer a hot TRANSACTION command in its plainest form; False: take the general path."""
        verb = body[:4].upper()
        if len(body) == 4:
            name = _BARE_FAST.get(verb)
            if name is None:
                return False
            getattr(self, name)("")
            return True
        # bytes.isdigit() is ASCII-only; the length bound keeps int() cheap and within LIMIT.
        digits = body[5:]
        if (
            verb not in _NUMBERED_FAST
            or body[4:5] != b" "
            or not digits.isdigit()
            or len(body) + 2 > COMMAND_LINE_LIMIT
        ):
            return False
        number = int(digits)
        if number < 1 or number > len(self.maildrop) or number in self.deleted:
            return False
        entry = self.maildrop[number - 1]
        if verb == b"RETR":
            self._retrieve(Retrieve(number, entry))
        elif verb == b"DELE":
            self.deleted.add(number)
            self._send(ok(f"Message {number} deleted"))
        elif verb == b"UIDL":
            self._send(ok(f"{number} {entry.unique_id}"))
        else:
            self._send(ok(f"{number} {entry.size}"))
        return True

    def _message_number(self, text: str, verb: str) -> int | None:
        """Parse and check a message number; on a problem, answer -ERR and return None."""
        if not text.isascii() or not text.isdigit():
            self._error(
                err(f"Invalid message number: {verb} needs a number from 1 to {len(self.maildrop)}")
            )
            return None
        number = int(text)
        if number < 1 or number > len(self.maildrop):
            self._error(err(f"No such message: the maildrop has {len(self.maildrop)} messages"))
            return None
        if number in self.deleted:
            self._error(err(f"Message {number} is marked as deleted (RSET unmarks it)"))
            return None
        return number

    def _cmd_stat(self, arg: str) -> None:
        if arg:
            self._error(err("Syntax: STAT (no arguments)"))
            return
        count, octets = self._totals()
        self._send(ok(f"{count} {octets}"))  # RFC 1939 §5: exactly "+OK nn mm" first

    def _cmd_list(self, arg: str) -> None:
        self._listing(arg, "LIST", lambda n, e: f"{n} {e.size}")

    def _cmd_uidl(self, arg: str) -> None:
        self._listing(arg, "UIDL", lambda n, e: f"{n} {e.unique_id}")

    def _listing(self, arg: str, verb: str, render: Callable[[int, MaildropEntry], str]) -> None:
        if arg:
            if " " in arg:
                self._error(err(f"Syntax: {verb} [message-number]"))
                return
            number = self._message_number(arg, verb)
            if number is not None:
                self._send(ok(render(number, self.maildrop[number - 1])))
            return
        lines = tuple(render(n, e) for n, e in enumerate(self.maildrop, 1) if n not in self.deleted)
        count, octets = self._totals()
        text = (
            f"{count} messages ({octets} octets)" if verb == "LIST" else "Unique-ID listing follows"
        )
        self._send(ok(text, lines))

    def _cmd_retr(self, arg: str) -> None:
        if not arg or " " in arg:
            self._error(err("Syntax: RETR message-number"))
            return
        number = self._message_number(arg, "RETR")
        if number is not None:
            self._retrieve(Retrieve(number, self.maildrop[number - 1]))

    def _cmd_top(self, arg: str) -> None:
        parts = arg.split()
        if len(parts) != 2:
            self._error(err("Syntax: TOP message-number lines"))
            return
        number = self._message_number(parts[0], "TOP")
        if number is None:
            return
        if not parts[1].isascii() or not parts[1].isdigit():
            self._error(err("Invalid line count: TOP needs a number of lines (0 or more)"))
            return
        self._retrieve(Retrieve(number, self.maildrop[number - 1], int(parts[1])))

    def _retrieve(self, event: Retrieve) -> None:
        self.state = State.SENDING
        self._events.append(event)

    def _cmd_dele(self, arg: str) -> None:
        if not arg or " " in arg:
            self._error(err("Syntax: DELE message-number"))
            return
        number = self._message_number(arg, "DELE")
        if number is not None:
            self.deleted.add(number)
            self._send(ok(f"Message {number} deleted"))

    def _cmd_noop(self, arg: str) -> None:
        if arg:
            self._error(err("Syntax: NOOP (no arguments)"))
            return
        self._send(ok())

    def _cmd_rset(self, arg: str) -> None:
        if arg:
            self._error(err("Syntax: RSET (no arguments)"))
            return
        self.deleted.clear()  # RFC 1939 §5: every message marked as deleted is unmarked
        count, octets = self._totals()
        self._send(ok(f"Maildrop has {count} messages ({octets} octets)"))

    def _cmd_last(self, arg: str) -> None:
        # LAST was removed from POP3 in RFC 1725; UIDL replaces it.
        self._error(err("LAST is obsolete and not supported; use UIDL"))
