"""The SMTP client as a sans-I/O state machine: commands in → bytes out, bytes in → replies out.

The adapter (``net.smtp_client``) writes what the command methods return and feeds what it reads
to ``receive_data``; ``next_event`` then hands back one ``ReplyEvent`` per reply, each paired with
the command it answers. Replies are matched to commands in order (RFC 5321 §4.1.1, RFC 2920 §3:
a server answers pipelined commands in the order it received them), so PIPELINING needs nothing
more than writing several commands before reading: the core keeps the queue of outstanding ones.

Invariants:
- Every reply line must start with a three-digit code; the lines of one multi-line reply must
  share it (RFC 5321 §4.2.1). Anything else is a ``RemoteProtocolError``.
- After ``starttls()`` is answered with 220 the core accepts no bytes until ``tls_started()``,
  which forgets what the server said before (RFC 3207 §4.2: the client MUST discard knowledge
  obtained from the server, and send EHLO again).
- AUTH (RFC 4954) is refused by the core until TLS is active (``tls_started()``, or a session
  built with ``tls=True`` for implicit TLS, RFC 8314 §3.3): a password never leaves in clear
  text (RFC 4954 §4, RFC 8314 §5.3). Secrets never enter the outstanding-command queue or any
  error text, only the bytes returned to the caller.
- Message content is dot-stuffed across piece boundaries (RFC 5321 §4.5.2), and the final
  ``.`` is preceded by a CRLF even when the content lacks a final line end.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from dataclasses import dataclass

from todoku.proto.errors import LocalProtocolError, RemoteProtocolError
from todoku.proto.smtp.address import encode_xtext
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import NEED_DATA, PAUSED

# Octets of a reply line before its CRLF. RFC 5321 §4.5.3.1.5 says 512 with the CRLF; real
# servers exceed it, so stay generous.
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 200
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")

# Names of the commands a reply answers; they also name the phase of a delivery attempt.
GREETING = "greeting"
EHLO = "ehlo"
HELO = "helo"
STARTTLS = "starttls"
MAIL = "mail"
RCPT = "rcpt"
DATA = "data"
END_OF_DATA = "end-of-data"  # the reply to the final "." (the message itself)
AUTH = "auth"  # AUTH and each SASL response after a 334 challenge
RSET = "rset"
QUIT = "quit"
NOOP = "noop"


@dataclass(frozen=True, slots=True)
class ServerReply:
    """One complete (possibly multi-line) reply, with the enhanced code split off when present."""

    code: int
    enhanced: str  # RFC 3463 "x.y.z", or "" when the server sent none
    lines: tuple[str, ...]  # text of each line after the code (and enhanced code, if any)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def as_reply(self) -> Reply:
        return Reply(self.code, self.enhanced, self.text)

    def __str__(self) -> str:
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"{self.code}{enhanced} {' '.join(self.lines)}".rstrip()


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    command: str  # one of the names above
    argument: str  # the recipient for RCPT, the sender for MAIL, "" otherwise
    reply: ServerReply


def plain_response(user: str, password: str) -> bytes:
    """The SASL PLAIN message (RFC 4616 §2): empty authzid, NUL, authcid, NUL, passwd."""
    return b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")


def parse_reply_lines(lines: list[bytes]) -> ServerReply:
    """Turn the raw lines of one reply (without CRLF) into a ``ServerReply``."""
    code = int(lines[0][:3])
    texts = []
    enhanced = ""
    for index, raw in enumerate(lines):
        text = raw[4:].decode("utf-8", "replace")
        match = _ENHANCED.match(text)
        # RFC 2034 §4: the enhanced code's class must match the reply's; otherwise it is just text.
        if match and int(match.group(1)) == code // 100:
            if index == 0:
                enhanced = f"{match.group(1)}.{int(match.group(2))}.{int(match.group(3))}"
            text = text[match.end() :]
        texts.append(text)
    return ServerReply(code, enhanced, tuple(texts))


class ClientConnection:
    """One SMTP client session. Call the command methods, send their bytes, feed the answers."""

    def __init__(self, *, tls: bool = False) -> None:
        """``tls``: the connection is encrypted from its start (implicit TLS, RFC 8314 §3.3)."""
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._outstanding: deque[tuple[str, str]] = deque([(GREETING, "")])
        self._paused = False  # STARTTLS answered: wait for tls_started()
        self._at_line_start = True
        self._last_bytes = b"\r\n"
        self.extensions: dict[str, str] = {}  # EHLO keyword (upper-case) → its parameters
        self.esmtp = False
        self.tls_active = tls
        self.closed = False

    # ------------------------------------------------------------------ what the server offers

    def supports(self, keyword: str) -> bool:
        return keyword.upper() in self.extensions

    @property
    def max_size(self) -> int | None:
        """RFC 1870 §4: SIZE with a number is the largest message accepted; 0 means no limit."""
        value = self.extensions.get("SIZE", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """The SASL mechanisms the AUTH keyword of EHLO lists (RFC 4954 §3), upper-case."""
        return tuple(m.upper() for m in self.extensions.get("AUTH", "").split())

    @property
    def outstanding(self) -> int:
        """How many replies are still expected."""
        return len(self._outstanding)

    # ------------------------------------------------------------------ bytes in

    def receive_data(self, data: bytes) -> None:
        if self._paused and data:
            raise RemoteProtocolError(
                "data received after 220 to STARTTLS, before the TLS handshake"
            )
        self._buffer += data

    def next_event(self) -> ReplyEvent | object:
        """The next complete reply as a ``ReplyEvent``, else ``NEED_DATA`` (or ``PAUSED``)."""
        if self._paused:
            return PAUSED
        while True:
            end = self._buffer.find(b"\n")
            # The limit counts the line with its CRLF, and holds however the reply is cut into
            # reads: an unfinished line that cannot end within it is refused as soon as it is
            # known, a complete line over it just the same.
            if end < 0:
                if len(self._buffer) + 1 > MAX_REPLY_LINE + 2:  # its LF is still to come
                    raise RemoteProtocolError("reply line too long")
                return NEED_DATA
            if end + 1 > MAX_REPLY_LINE + 2:
                raise RemoteProtocolError("reply line too long")
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if len(raw) < 3 or not raw[:3].isdigit() or raw[:1] not in b"12345":
                raise RemoteProtocolError(f"not an SMTP reply: {raw[:80]!r}")
            if self._lines and raw[:3] != self._lines[0][:3]:
                raise RemoteProtocolError("multi-line reply changed its code")  # RFC 5321 §4.2.1
            self._lines.append(raw)
            if len(self._lines) > MAX_REPLY_LINES:
                raise RemoteProtocolError("reply has too many lines")
            if raw[3:4] == b"-":
                continue
            reply = parse_reply_lines(self._lines)
            self._lines = []
            return self._answered(reply)

    def _answered(self, reply: ServerReply) -> ReplyEvent:
        if not self._outstanding:
            raise RemoteProtocolError(f"reply without a command: {reply}")
        command, argument = self._outstanding.popleft()
        if command == EHLO and reply.code == 250:
            self.esmtp = True
            self.extensions = {}
            for line in reply.lines[1:]:  # the first line is the server's greeting text
                keyword, _, params = line.strip().partition(" ")
                if keyword:
                    self.extensions[keyword.upper()] = params
        elif command == STARTTLS and reply.code == 220:
            self._paused = True
        if reply.code == 421:
            # RFC 5321 §3.8: the server is closing; no other reply will come.
            self.closed = True
            self._outstanding.clear()
        return ReplyEvent(command, argument, reply)

    def tls_started(self) -> None:
        """The TLS handshake is done: forget the plain-text session (RFC 3207 §4.2)."""
        if not self._paused:
            raise LocalProtocolError("tls_started() without a 220 reply to STARTTLS")
        self._paused = False
        self.tls_active = True
        self.extensions = {}
        self.esmtp = False
        self._buffer.clear()

    # ------------------------------------------------------------------ commands out

    def _command(self, name: str, line: str, argument: str = "") -> bytes:
        if self._paused:
            raise LocalProtocolError("no command may be sent before the TLS handshake")
        if "\r" in line or "\n" in line:
            raise LocalProtocolError("line break inside a command")
        self._outstanding.append((name, argument))
        return (line + "\r\n").encode("utf-8")

    def ehlo(self, name: str) -> bytes:
        return self._command(EHLO, f"EHLO {name}")

    def helo(self, name: str) -> bytes:
        return self._command(HELO, f"HELO {name}")

    def starttls(self) -> bytes:
        return self._command(STARTTLS, "STARTTLS")

    def auth(self, mechanism: str, initial_response: bytes | None = None) -> bytes:
        """``AUTH mechanism [initial-response]`` (RFC 4954 §4). The reply is 235 (done), 334 (a
        challenge: answer with ``auth_response``) or a refusal (535, 534, 454, ...)."""
        self._require_tls()
        line = f"AUTH {mechanism.upper()}"
        if initial_response is not None:
            # RFC 4954 §4: an empty initial response is sent as a single "=".
            line += " " + (base64.b64encode(initial_response).decode("ascii") or "=")
        return self._command(AUTH, line)

    def auth_response(self, response: bytes) -> bytes:
        """The answer to a 334 challenge, base64-encoded on a line of its own (RFC 4954 §4)."""
        self._require_tls()
        return self._command(AUTH, base64.b64encode(response).decode("ascii"))

    def auth_cancel(self) -> bytes:
        """``*``: give up the exchange after a challenge; the server answers 501 (RFC 4954 §4)."""
        return self._command(AUTH, "*")

    def _require_tls(self) -> None:
        if not self.tls_active:
            # RFC 8314 §5.3 / RFC 4954 §4: no credentials over an unencrypted connection.
            raise LocalProtocolError("AUTH before TLS: credentials are only sent encrypted")

    def noop(self) -> bytes:
        return self._command(NOOP, "NOOP")

    def rset(self) -> bytes:
        return self._command(RSET, "RSET")

    def quit(self) -> bytes:
        return self._command(QUIT, "QUIT")

    def mail(
        self,
        sender: str,
        *,
        size: int | None = None,
        eight_bit: bool = False,
        smtputf8: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        requiretls: bool = False,
    ) -> bytes:
        """MAIL FROM with only the parameters the server announced (RFC 5321 §4.1.1.11).

        ``requiretls`` passes RFC 8689's REQUIRETLS on, when the server offers it on a TLS
        session (§2, §4.2.1); a REQUIRETLS message must not go to a server without it (§4.2.1),
        which the caller checks before MAIL (``net.smtp_client`` refuses it with 5.7.30)."""
        params = []
        if size is not None and self.supports("SIZE"):
            params.append(f"SIZE={size}")  # RFC 1870 §6
        if eight_bit and self.supports("8BITMIME"):
            params.append("BODY=8BITMIME")  # RFC 6152 §2
        if smtputf8 and self.supports("SMTPUTF8"):
            params.append("SMTPUTF8")  # RFC 6531 §3.4
        if self.supports("DSN"):
            if ret:
                params.append(f"RET={ret.upper()}")  # RFC 3461 §4.3
            if envid:
                params.append(f"ENVID={encode_xtext(envid)}")  # RFC 3461 §4.4
        if requiretls and self.tls_active and self.supports("REQUIRETLS"):
            params.append("REQUIRETLS")  # RFC 8689 §2
        line = f"MAIL FROM:<{sender}>" + "".join(f" {p}" for p in params)
        return self._command(MAIL, line, sender)

    def rcpt(
        self, recipient: str, *, notify: tuple[str, ...] = (), orcpt: str | None = None
    ) -> bytes:
        params = []
        if self.supports("DSN"):
            if notify:
                params.append("NOTIFY=" + ",".join(n.upper() for n in notify))  # RFC 3461 §4.1
            if orcpt:
                addr_type, _, address = orcpt.partition(";")
                # RFC 3461 §4.2: ORCPT=addr-type;xtext
                params.append(f"ORCPT={addr_type};{encode_xtext(address)}")
        line = f"RCPT TO:<{recipient}>" + "".join(f" {p}" for p in params)
        return self._command(RCPT, line, recipient)

    def data(self) -> bytes:
        self._at_line_start = True
        self._last_bytes = b"\r\n"
        return self._command(DATA, "DATA")

    def content(self, piece: bytes) -> bytes:
        """One piece of the message (CRLF line ends), dot-stuffed (RFC 5321 §4.5.2).

        Works on whole pieces with ``bytes.replace`` rather than line by line, so big messages
        cost a few passes of C code; only a dot at the very start of the piece needs the state
        carried over from the previous piece.
        """
        if not piece:
            return b""
        stuffed = piece.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        elif self._last_bytes.endswith(b"\r") and stuffed.startswith(b"\n."):
            # The boundary fell between "\r" and "\n.": the line starts inside this piece.
            stuffed = b"\n." + stuffed[1:]
        self._last_bytes = (self._last_bytes + piece)[-2:]
        self._at_line_start = self._last_bytes == b"\r\n"
        return stuffed

    def end_of_data(self) -> bytes:
        """The final ``.``; adds the missing CRLF first when the content did not end with one."""
        prefix = b"" if self._at_line_start else b"\r\n"
        if self._paused:
            raise LocalProtocolError("no data may be sent before the TLS handshake")
        self._outstanding.append((END_OF_DATA, ""))
        self._at_line_start = True
        return prefix + b".\r\n"
