"""SMTP replies: basic code, enhanced status code (RFC 3463) and text, with the everyday ones named.

The texts of the replies that users meet every day follow the wording of the established servers
(mostly Postfix), so that mail programs, users and bounce tools recognise them.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLY_LINE_LIMIT = 512  # RFC 5321 §4.5.3.1.5: reply code, text and CRLF
_ELLIPSIS = b"..."


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str  # "" only for the greeting and replies that must not carry one (RFC 2034 §3)
    text: str

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text)

    def lines(self) -> list[str]:
        return self.text.split("\n")

    def to_bytes(self) -> bytes:
        """Render as reply lines (RFC 5321 §4.2.1: a hyphen after the code on all but the last).

        Each line is at most ``REPLY_LINE_LIMIT`` octets, CRLF included (RFC 5321 §4.5.3.1.5):
        a longer text is cut at a character boundary and ends in "...", whatever it quotes.
        """
        parts = self.lines()
        out = []
        for index, line in enumerate(parts):
            sep = " " if index == len(parts) - 1 else "-"
            if self.enhanced:
                rendered = f"{self.code}{sep}{self.enhanced} {line}".encode()
            else:
                rendered = f"{self.code}{sep}{line}".encode()
            if len(rendered) + 2 > REPLY_LINE_LIMIT:
                # "ignore" drops a character the cut split in two, never a whole one.
                kept = rendered[: REPLY_LINE_LIMIT - 2 - len(_ELLIPSIS)]
                rendered = kept.decode("utf-8", "ignore").encode() + _ELLIPSIS
            out.append(rendered + b"\r\n")
        return b"".join(out)

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}".replace("  ", " ")


# RFC 5321 §4.2.2 and RFC 3463 / RFC 5248 (the enhanced status code registry).
OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Ok")
RECIPIENT_OK = Reply(250, "2.1.5", "Ok")
RESET_OK = Reply(250, "2.0.0", "Ok")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
START_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
BYE = Reply(221, "2.0.0", "Bye")
VRFY_CANNOT = Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321")

SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing transmission channel")
TIMEOUT = Reply(421, "4.4.2", "Error: timeout exceeded")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Error: too many errors")
AUTH_LOCKED_OUT = Reply(
    421, "4.7.0", "Too many failed authentication attempts from your address; try again later"
)
STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")
LOCAL_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available due to local problem")
TEMP_AUTH_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")

COMMAND_UNRECOGNIZED = Reply(500, "5.5.2", "Error: command not recognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Error: line too long")
BAD_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
BAD_SEQUENCE = Reply(503, "5.5.1", "Error: bad sequence of commands")
PARAM_NOT_IMPLEMENTED = Reply(555, "5.5.4", "Unsupported option")
AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication aborted")
AUTH_MECHANISM_UNKNOWN = Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
STARTTLS_FIRST = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_NEEDS_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed limit")
NO_SMTPUTF8 = Reply(553, "5.6.7", "Error: SMTPUTF8 support is required for this address")
BARE_NEWLINE = Reply(550, "5.6.11", "Error: bare <CR> or <LF> in command line")


def user_unknown(address: str) -> Reply:
    return Reply(
        550,
        "5.1.1",
        f"<{address}>: Recipient address rejected: User unknown in local recipient table",
    )


def relay_denied(address: str) -> Reply:
    return Reply(554, "5.7.1", f"<{address}>: Relay access denied")


def sender_not_owned(address: str, user: str) -> Reply:
    return Reply(553, "5.7.1", f"<{address}>: Sender address rejected: not owned by user {user}")


def bad_address(address: str, why: str) -> Reply:
    return Reply(501, "5.1.3", f"<{address}>: {why}")


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")
