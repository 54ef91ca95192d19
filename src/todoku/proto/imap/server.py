"""The IMAP server core: a sans-I/O state machine (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1).

Use: ``receive_data(bytes)`` (``b""`` at end of input), then ``next_event()`` until it returns
``NEED_DATA``; answer each ``CommandReceived`` or ``LoginRequest`` with ``untagged()`` lines and
one ``complete()`` (or ``accept_login()``); write ``data_to_send()`` to the peer before reading
more. Commands are answered one at a time, in order; pipelined commands wait in the buffer.

What the core decides alone: syntax (tagged BAD with a reason, and the session goes on; 20
errors close it), which command is legal in which state, CAPABILITY per state and TLS (no
LOGIN/AUTHENTICATE before TLS: LOGINDISABLED), literals (a synchronizing one beyond its limit is
refused before the client sends it; a non-synchronizing one beyond it closes the session, RFC
7888 §4), the SASL exchange, STARTTLS, ENABLE, ID, NAMESPACE, LOGOUT, IDLE's continuation and
DONE, and COMPRESS=DEFLATE (RFC 4978: the core inflates what it receives and deflates what it
sends, so the link carries bytes as before). The driver executes the rest against the mail store.
"""

from __future__ import annotations

import base64
import enum
import re
import zlib
from collections import deque
from dataclasses import dataclass

from todoku.proto import sasl
from todoku.proto.errors import LocalProtocolError
from todoku.proto.framing import TOO_LONG, LineFramer, strip_eol
from todoku.proto.imap import commands as cmds
from todoku.proto.imap.search import BadCharset
from todoku.proto.imap.syntax import (
    Atom,
    Command,
    ImapSyntaxError,
    Tokenizer,
    astring,
    quoted,
)

LINE_LIMIT = 64 * 1024  # octets of one line of a command (RFC 7162 §4 asks for at least 8192)
COMMAND_LIMIT = 1024 * 1024  # octets of a command's lines and small literals together
LITERAL_LIMIT = 64 * 1024  # a literal in any command but APPEND (a name, a search string)
NONSYNC_LIMIT = 4096  # LITERAL-: the largest non-synchronizing literal (RFC 7888 §5)
MAX_LITERALS = 64  # literals in one command
MAX_ERRORS = 20
INFLATE_CHUNK = 64 * 1024  # COMPRESS: inflate at most this much ahead of the parser

_LITERAL_AT_END = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}$")
_TAG_STOP = re.compile(rb"[\x00-\x20(){%*\"\\+\x7f-\xff]")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class _Mode(enum.Enum):
    COMMAND = "command"  # reading command lines
    LITERAL = "literal"  # reading a literal's octets
    SASL = "sasl"  # waiting for a SASL response line
    IDLE = "idle"  # waiting for DONE
    PENDING = "pending"  # a command is with the driver
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


class _Sentinel(enum.Enum):
    NEED_DATA = "need-data"
    PAUSED = "paused"  # STARTTLS: call tls_started() after the handshake


NEED_DATA = _Sentinel.NEED_DATA
PAUSED = _Sentinel.PAUSED


@dataclass(frozen=True, slots=True)
class CommandReceived:
    tag: str
    command: cmds.Command


@dataclass(frozen=True, slots=True)
class LoginRequest:
    tag: str
    mechanism: str  # "LOGIN" for the LOGIN command, else the SASL mechanism
    username: str
    password: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class IdleDone:
    """DONE ended the IDLE the driver is running; answer it with ``complete``."""

    tag: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    pass


@dataclass(frozen=True, slots=True)
class Closed:
    by_peer: bool


Event = CommandReceived | LoginRequest | IdleDone | StartTLS | Closed


@dataclass(frozen=True, slots=True)
class SessionSettings:
    hostname: str
    tls_available: bool = False  # STARTTLS can be offered (port 143)
    tls_active: bool = False  # implicit TLS (port 993)
    plaintext_login_allowed: bool = False  # loopback opt-in
    append_limit: int = 25 * 1024 * 1024
    implementation: str = "todoku"


_ANY_STATE = {"CAPABILITY", "NOOP", "LOGOUT", "ID"}
_NOT_AUTHENTICATED = {"STARTTLS", "LOGIN", "AUTHENTICATE"}
_CORE_AUTHENTICATED = {"ENABLE", "NAMESPACE", "COMPRESS"}
_KNOWN = (
    _ANY_STATE
    | _NOT_AUTHENTICATED
    | _CORE_AUTHENTICATED
    | cmds.AUTHENTICATED_COMMANDS
    | cmds.SELECTED_COMMANDS
)
_ENABLEABLE = {"CONDSTORE", "QRESYNC", "IMAP4REV2", "UTF8=ACCEPT"}


class ServerConnection:
    """One IMAP session, from greeting to close, without any I/O."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.state = State.NOT_AUTHENTICATED
        self.tls_active = settings.tls_active
        self.authenticated_user: str | None = None
        self.enabled: set[str] = set()  # ENABLEd extensions (upper case)
        self.condstore = False  # a CONDSTORE-enabling command was seen (RFC 7162 §3.1)
        self.read_only = False
        self.error_count = 0
        self._mode = _Mode.COMMAND
        self._lines = LineFramer()
        self._eof = False
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._pending_tag: str | None = None
        # The command being read: its text so far, literals by position, what the literal next
        # to read is for.
        self._text = bytearray()
        self._literals: dict[int, tuple[int, bytes]] = {}
        self._literal_size = 0
        self._literal_brace = 0
        self._sasl: sasl.SaslExchange | None = None
        self._sasl_tag = ""
        self._idle_tag = ""
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self._closed_event_sent = False
        self._plain = b""
        self._send_line(b"* OK [CAPABILITY " + self._capabilities() + b"] IMAP server ready")

    # ----------------------------------------------------------------- driver API

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def closing(self) -> bool:
        return self._mode is _Mode.CLOSED

    @property
    def pending(self) -> bool:
        """A command is with the driver, waiting for ``complete`` (or ``accept_login``)."""
        return self._pending_tag is not None

    @property
    def buffered(self) -> int:
        return self._lines.buffered + len(self._text)

    def receive_data(self, data: bytes) -> None:
        if self._mode is _Mode.CLOSED:
            return
        if not data:
            self._eof = True
            return
        if self._mode is _Mode.TLS_PENDING:
            return  # RFC 9051 §6.2.1 / CVE-2011-0411: nothing sent in clear text is used
        if self._inflate is not None:
            self._feed_inflated(data)
            return
        self._lines.feed(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        if out and self._deflate is not None:
            out = self._deflate.compress(out) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        if self._plain:  # what was said before COMPRESS took effect
            out, self._plain = self._plain + out, b""
        return out

    def next_event(self) -> Event | _Sentinel:
        while True:
            if self._events:
                return self._events.popleft()
            mode = self._mode
            if mode is _Mode.CLOSED:
                if not self._closed_event_sent:
                    self._closed_event_sent = True
                    return Closed(by_peer=False)
                return NEED_DATA
            if mode is _Mode.TLS_PENDING:
                return PAUSED
            if mode is _Mode.PENDING:
                return NEED_DATA  # the driver has not completed the command yet
            inflate = self._inflate
            if (
                inflate is not None
                and inflate.unconsumed_tail
                and self._lines.buffered < INFLATE_CHUNK
            ):
                self._lines.feed(inflate.decompress(inflate.unconsumed_tail, INFLATE_CHUNK))
            if mode is _Mode.LITERAL:
                literal = self._lines.take_exactly(self._literal_size)
                if literal is None:
                    return self._need_data()
                self._literals[self._literal_brace] = (len(self._text), literal)
                self._mode = _Mode.COMMAND
                continue
            line = self._lines.read_line(LINE_LIMIT)
            if line is None:
                return self._need_data()
            if line is TOO_LONG:
                self._reset_command()
                if mode is _Mode.SASL:
                    self._end_sasl(b"BAD SASL response too long")
                else:
                    self._error(b"* BAD Line too long (the limit is %d octets)" % LINE_LIMIT)
                continue
            body = strip_eol(line)
            if mode is _Mode.SASL:
                self._sasl_response(body)
            elif mode is _Mode.IDLE:
                self._idle_line(body)
            else:
                self._command_line(body)

    def untagged(self, line: bytes) -> None:
        """One untagged response (or several), with its CRLF, from the driver."""
        self._out.append(line)

    def continuation(self, text: str) -> None:
        self._send_line(b"+ " + text.encode())

    def complete(self, status: str, text: str, code: str | None = None) -> None:
        """End the pending command with ``OK``, ``NO`` or ``BAD``."""
        tag = self._take_pending()
        self._send_tagged(tag, status, text, code)
        if status == "BAD":
            self._count_error()
        if self._mode is not _Mode.CLOSED:
            self._mode = _Mode.COMMAND

    def accept_login(self, user: str) -> None:
        """The LoginRequest's credentials are good: the session is authenticated as ``user``."""
        tag = self._take_pending()
        self.authenticated_user = user
        self.state = State.AUTHENTICATED
        self._mode = _Mode.COMMAND
        self._send_tagged(tag, "OK", "Logged in", "CAPABILITY " + self._capabilities().decode())

    def selected(self, read_only: bool) -> None:
        """The pending SELECT/EXAMINE succeeded (call before ``complete``)."""
        self.state = State.SELECTED
        self.read_only = read_only

    def unselected(self) -> None:
        """CLOSE/UNSELECT, or a failed SELECT: back to AUTHENTICATED."""
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def tls_started(self) -> None:
        if self._mode is not _Mode.TLS_PENDING:
            raise LocalProtocolError("tls_started() without STARTTLS")
        self.tls_active = True
        self._mode = _Mode.COMMAND
        self._lines.clear()

    def shutdown(self, text: str = "Server shutting down") -> None:
        """``* BYE`` and close (server stopping, idle time-out)."""
        if self._mode is not _Mode.CLOSED:
            self._send_line(b"* BYE " + text.encode())
            self._close()

    # ----------------------------------------------------------------- internals

    def _need_data(self) -> Event | _Sentinel:
        if self._eof:
            self._close()
            self._closed_event_sent = True
            return Closed(by_peer=True)
        return NEED_DATA

    def _take_pending(self) -> str:
        tag = self._pending_tag
        if tag is None:
            raise LocalProtocolError("no command is pending")
        self._pending_tag = None
        return tag

    def _send_line(self, line: bytes) -> None:
        self._out.append(line + b"\r\n")

    def _send_tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        code_text = f"[{code}] " if code else ""
        self._send_line(f"{tag} {status} {code_text}{text}".encode())

    def _error(self, line: bytes) -> None:
        self._send_line(line)
        self._count_error()

    def _bad(self, tag: str, text: str) -> None:
        self._send_tagged(tag, "BAD", text)
        self._count_error()

    def _count_error(self) -> None:
        self.error_count += 1
        if self.error_count >= MAX_ERRORS and self._mode is not _Mode.CLOSED:
            self._send_line(b"* BYE Too many errors; closing the connection")
            self._close()

    def _close(self) -> None:
        self._mode = _Mode.CLOSED
        self.state = State.LOGOUT
        self._sasl = None
        self._reset_command()

    def _reset_command(self) -> None:
        self._text = bytearray()
        self._literals = {}

    def _feed_inflated(self, data: bytes) -> None:
        assert self._inflate is not None
        try:
            tail = self._inflate.unconsumed_tail + data
            self._lines.feed(self._inflate.decompress(tail, INFLATE_CHUNK))
        except zlib.error:
            self._send_line(b"* BYE Compressed data is corrupt")
            self._close()

    # ----------------------------------------------------------------- reading commands

    def _command_line(self, body: bytes) -> None:
        start = len(self._text)
        self._text += body
        if len(self._text) > COMMAND_LIMIT:
            tag = self._tag_of(bytes(self._text))
            self._reset_command()
            self._error(f"{tag or '*'} BAD Command too long".encode())
            return
        m = _LITERAL_AT_END.search(body)
        if m is None:
            text = bytes(self._text)
            literals = self._literals
            self._reset_command()
            self._dispatch(Command(text, literals))
            return
        size = int(m.group(2))
        nonsync = m.group(3) == b"+"
        head = bytes(self._text[:200])
        tag = self._tag_of(head) or "*"
        is_append = _command_name(head) == "APPEND"
        limit = self.settings.append_limit if is_append else LITERAL_LIMIT
        too_many = len(self._literals) >= MAX_LITERALS
        if size > limit or too_many or (nonsync and size > NONSYNC_LIMIT and not is_append):
            self._reset_command()
            what = "message" if is_append else "literal"
            code = "TOOBIG" if is_append else None
            reason = (
                f"too many literals (at most {MAX_LITERALS})"
                if too_many
                else f"the {what} is too big (at most {limit} octets)"
            )
            if nonsync:
                # RFC 7888 §4: its octets are already on the way; there is no telling them from
                # commands, so the session ends.
                self._send_tagged(tag, "BAD", reason[0].upper() + reason[1:], code)
                self._send_line(b"* BYE A non-synchronizing literal was too big")
                self._close()
                return
            self._send_tagged(
                tag, "NO" if is_append else "BAD", reason[0].upper() + reason[1:], code
            )
            self._count_error()
            return
        self._literal_brace = start + m.start()
        self._literal_size = size
        self._mode = _Mode.LITERAL
        if not nonsync:
            self._send_line(b"+ Ready for literal data")

    @staticmethod
    def _tag_of(text: bytes) -> str | None:
        end = _TAG_STOP.search(text)
        tag = text[: end.start()] if end else text
        if not tag or (end is not None and text[end.start() : end.start() + 1] != b" "):
            return None
        return tag.decode("ascii")

    def _dispatch(self, command: Command) -> None:
        tag = self._tag_of(command.text[:200])
        if tag is None:
            shown = "" if command.text.strip() else " (an empty line)"
            self._error(f"* BAD Each command starts with a tag{shown}".encode())
            return
        tok = Tokenizer(command, len(tag) + 1)
        try:
            name_value = tok.value()
            if not isinstance(name_value, Atom) or name_value.section is not None:
                raise ImapSyntaxError("a command name is an atom")
            name = name_value.upper
        except ImapSyntaxError:
            self._bad(tag, "Missing or malformed command name")
            return
        if name not in _KNOWN:
            self._bad(tag, f"Unknown command {name[:30]}")
            return
        state = self.state
        if name in _ANY_STATE:
            pass
        elif name in _NOT_AUTHENTICATED:
            if state is not State.NOT_AUTHENTICATED:
                self._bad(tag, f"{name} is not valid once logged in")
                return
        elif state is State.NOT_AUTHENTICATED:
            self._bad(tag, f"{name} needs a login first")
            return
        elif name in cmds.SELECTED_COMMANDS and state is not State.SELECTED:
            self._bad(tag, f"{name} needs a selected mailbox (SELECT or EXAMINE first)")
            return
        try:
            handler = getattr(self, f"_cmd_{name.lower()}", None)
            if handler is not None:
                handler(tag, tok)
                return
            if name == "NOOP" and state is State.NOT_AUTHENTICATED:
                tok.end()
                self._send_tagged(tag, "OK", "NOOP completed")
                return
            command_ = cmds.parse_command(name, tok, self.utf8)
        except BadCharset:
            self._send_tagged(tag, "NO", "Only UTF-8 searches are supported", "BADCHARSET (UTF-8)")
            return
        except ImapSyntaxError as exc:
            self._bad(tag, f"{name}: {exc}" if str(exc) else f"{name}: syntax error")
            return
        if isinstance(command_, cmds.Select | cmds.Fetch | cmds.Store) and (
            getattr(command_, "condstore", False)
            or getattr(command_, "changed_since", None) is not None
            or getattr(command_, "unchanged_since", None) is not None
        ):
            self.condstore = True
        if isinstance(command_, cmds.Select) and command_.qresync is not None and not self.qresync:
            self._bad(tag, "SELECT (QRESYNC ...) needs ENABLE QRESYNC first")
            return
        if isinstance(command_, cmds.Fetch) and command_.vanished and not self.qresync:
            self._bad(tag, "VANISHED needs ENABLE QRESYNC first")
            return
        if isinstance(command_, cmds.Select) and self.state is State.SELECTED:
            # RFC 9051 §6.3.2: a SELECT closes the selected mailbox first (without expunging).
            self.state = State.AUTHENTICATED
            if self.qresync:
                self._send_line(b"* OK [CLOSED] Previous mailbox closed")
        if isinstance(command_, cmds.Idle):
            self._mode = _Mode.IDLE
            self._idle_tag = tag
            self._send_line(b"+ idling")
            self._events.append(CommandReceived(tag, command_))
            return
        self._pending_tag = tag
        self._mode = _Mode.PENDING
        self._events.append(CommandReceived(tag, command_))

    # ----------------------------------------------------------------- commands the core answers

    def _capabilities(self) -> bytes:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        caps += ["NAMESPACE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.settings.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            if self._login_allowed():
                caps += [f"AUTH={m}" for m in sasl.MECHANISMS]
            else:
                caps.append("LOGINDISABLED")
        else:
            caps += [
                "UIDPLUS",
                "MOVE",
                "CREATE-SPECIAL-USE",
                "LIST-STATUS",
                "ESEARCH",
                "CONDSTORE",
                "QRESYNC",
                "UTF8=ACCEPT",
                f"APPENDLIMIT={self.settings.append_limit}",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
                "BINARY",
                "STATUS=SIZE",
            ]
            if self._deflate is None:
                caps.append("COMPRESS=DEFLATE")
        return " ".join(caps).encode()

    def _login_allowed(self) -> bool:
        return self.tls_active or self.settings.plaintext_login_allowed

    def _cmd_capability(self, tag: str, tok: Tokenizer) -> None:
        tok.end()
        self._send_line(b"* CAPABILITY " + self._capabilities())
        self._send_tagged(tag, "OK", "CAPABILITY completed")

    def _cmd_logout(self, tag: str, tok: Tokenizer) -> None:
        tok.end()
        self._send_line(b"* BYE Logging out")
        self._send_tagged(tag, "OK", "LOGOUT completed")
        self._close()

    def _cmd_id(self, tag: str, tok: Tokenizer) -> None:
        # RFC 2971: the client's parameters are read (and bounded) but not kept.
        tok.space()
        tok.value()
        tok.end()
        self._send_line(
            b'* ID ("name" ' + quoted(self.settings.implementation) + b' "vendor" "todoku")'
        )
        self._send_tagged(tag, "OK", "ID completed")

    def _cmd_namespace(self, tag: str, tok: Tokenizer) -> None:
        tok.end()
        self._send_line(b'* NAMESPACE (("" "/")) NIL NIL')
        self._send_tagged(tag, "OK", "NAMESPACE completed")

    def _cmd_enable(self, tag: str, tok: Tokenizer) -> None:
        tok.space()
        names = [astring(v, "an extension").upper() for v in tok.values_to_end()]
        if not names:
            raise ImapSyntaxError("ENABLE needs at least one extension")
        newly = [n for n in names if n in _ENABLEABLE and n not in self.enabled]
        for n in newly:
            self.enabled.add(n)
            if n == "QRESYNC":
                self.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3
                self.condstore = True
            if n == "CONDSTORE":
                self.condstore = True
        spelled = {"IMAP4REV2": "IMAP4rev2"}
        self._send_line(" ".join(["* ENABLED", *(spelled.get(n, n) for n in newly)]).encode())
        self._send_tagged(tag, "OK", "ENABLE completed")

    def _cmd_compress(self, tag: str, tok: Tokenizer) -> None:
        tok.space()
        method = astring(tok.value(), "a compression method").upper()
        tok.end()
        if method != "DEFLATE":
            self._bad(tag, "Only DEFLATE is supported")
            return
        if self._deflate is not None:
            self._send_tagged(tag, "NO", "Compression is already active", "COMPRESSIONACTIVE")
            return
        self._send_tagged(tag, "OK", "DEFLATE active")
        # RFC 4978 §3: compression starts right after the tagged OK, in both directions.
        self._plain = b"".join(self._out)
        self._out = []
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        rest = self._lines.take(self._lines.buffered)
        if rest:
            self._feed_inflated(rest)

    def _cmd_starttls(self, tag: str, tok: Tokenizer) -> None:
        tok.end()
        if self.tls_active:
            self._bad(tag, "TLS is already active")
            return
        if not self.settings.tls_available:
            self._send_tagged(tag, "NO", "STARTTLS is not available here")
            return
        self._send_tagged(tag, "OK", "Begin TLS negotiation now")
        self._mode = _Mode.TLS_PENDING
        self._lines.clear()
        self._events.append(StartTLS())

    def _cmd_login(self, tag: str, tok: Tokenizer) -> None:
        tok.space()
        user = astring(tok.value(), "a user name")
        tok.space()
        password = astring(tok.value(), "a password")
        tok.end()
        if not self._login_allowed():
            self._send_tagged(
                tag, "NO", "Log in over TLS: use STARTTLS first or port 993", "PRIVACYREQUIRED"
            )
            self._count_error()
            return
        self._login(LoginRequest(tag, "LOGIN", user, password))

    def _login(self, request: LoginRequest) -> None:
        self._pending_tag = request.tag
        self._mode = _Mode.PENDING
        self._events.append(request)

    def _cmd_authenticate(self, tag: str, tok: Tokenizer) -> None:
        tok.space()
        mechanism = atom(tok.value(), "a SASL mechanism").upper()
        initial: bytes | None = None
        if tok.maybe_space():
            text = atom(tok.value(), "an initial response")
            initial = b"" if text == "=" else sasl.decode_response(text)
        tok.end()
        if not self._login_allowed():
            self._send_tagged(
                tag, "NO", "Log in over TLS: use STARTTLS first or port 993", "PRIVACYREQUIRED"
            )
            self._count_error()
            return
        try:
            exchange = sasl.SaslExchange(mechanism)
            step = exchange.start(initial)
        except sasl.SaslError as exc:
            if "Unrecognized" in str(exc):
                self._send_tagged(tag, "NO", f"Use {' or '.join(sasl.MECHANISMS)}", "CANNOT")
            else:
                self._send_tagged(tag, "NO", str(exc), "AUTHENTICATIONFAILED")
            self._count_error()
            return
        self._sasl = exchange
        self._sasl_tag = tag
        self._sasl_step(step)

    def _sasl_step(self, step: sasl.Challenge | sasl.Credentials) -> None:
        if isinstance(step, sasl.Challenge):
            self._mode = _Mode.SASL
            self._out.append(b"+ " + base64.b64encode(step.data) + b"\r\n")
            return
        self._sasl = None
        self._mode = _Mode.COMMAND
        self._login(
            LoginRequest(self._sasl_tag, step.mechanism, step.username, step.password, step.authzid)
        )

    def _sasl_response(self, body: bytes) -> None:
        exchange = self._sasl
        assert exchange is not None
        if body.strip() == b"*":
            self._end_sasl(b"BAD Authentication cancelled")
            return
        try:
            step = exchange.step(sasl.decode_response(body.decode("ascii", "replace")))
        except sasl.SaslError as exc:
            self._end_sasl(b"NO [AUTHENTICATIONFAILED] " + str(exc).encode())
            return
        self._sasl_step(step)

    def _end_sasl(self, reply: bytes) -> None:
        self._sasl = None
        self._mode = _Mode.COMMAND
        self._send_line(self._sasl_tag.encode() + b" " + reply)
        self._count_error()

    def _idle_line(self, body: bytes) -> None:
        if body.upper() == b"DONE":
            self._pending_tag = self._idle_tag
            self._mode = _Mode.PENDING
            self._events.append(IdleDone(self._idle_tag))
            return
        # RFC 2177 §3: only DONE ends IDLE; anything else is an error that ends it too.
        self._pending_tag = self._idle_tag
        self._mode = _Mode.PENDING
        self._events.append(IdleDone(self._idle_tag))
        self._count_error()


def _command_name(head: bytes) -> str:
    parts = head.split(b" ", 3)
    if len(parts) < 2:
        return ""
    name = parts[1].upper()
    if name == b"UID" and len(parts) > 2:
        return "UID " + parts[2].upper().decode("ascii", "replace")
    return name.decode("ascii", "replace")


def atom(value: object, what: str) -> str:
    if isinstance(value, Atom) and value.section is None:
        return value.text
    raise ImapSyntaxError(f"{what} must be an atom")
