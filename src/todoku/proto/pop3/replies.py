"""POP3 status lines: ``+OK`` / ``-ERR``, an optional response code in brackets, and a text.

Response codes (RFC 2449 §8, RFC 3206) tell a mail program *why* a command failed, so it can tell
the user something better than "server error": ``[IN-USE]`` (another session holds the maildrop),
``[AUTH]`` (the credentials or the way they were sent are the problem), ``[SYS/TEMP]`` (a server
problem that may go away), ``[SYS/PERM]`` (one that will not).
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_IN_USE = "IN-USE"  # RFC 2449 §8.1.1
CODE_LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 §8.1.2
CODE_SYS_TEMP = "SYS/TEMP"  # RFC 3206 §4
CODE_SYS_PERM = "SYS/PERM"  # RFC 3206 §4
CODE_AUTH = "AUTH"  # RFC 3206 §5


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    text: str
    code: str = ""  # response code without brackets, "" for none
    # The body of a multi-line response (RFC 1939 §3); None for a one-line response.
    lines: tuple[str, ...] | None = None

    def with_text(self, text: str) -> Reply:
        return Reply(self.ok, text, self.code, self.lines)

    def to_bytes(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        parts = [status]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.text:
            parts.append(self.text)
        out = [" ".join(parts) + "\r\n"]
        if self.lines is not None:
            for line in self.lines:
                # RFC 1939 §3: a line of a multi-line response that starts with "." is byte-stuffed.
                out.append(("." + line if line.startswith(".") else line) + "\r\n")
            out.append(".\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        return self.to_bytes().split(b"\r\n", 1)[0].decode("utf-8", "replace")


def ok(text: str = "", lines: tuple[str, ...] | None = None) -> Reply:
    return Reply(True, text, "", lines)


def err(text: str, code: str = "") -> Reply:
    return Reply(False, text, code)


# The replies a driver needs to build; the core's own are next to the code that sends them.
LOGIN_FAILED = err("Authentication failed: wrong user name or password", CODE_AUTH)
LOCKED_OUT = err(
    "Too many failed logins from your address; try again later", CODE_AUTH
)  # RFC 3206 §5: the problem is the login attempts, not the server
IN_USE = err("Mailbox is in use by another POP3 session; try again when it has ended", CODE_IN_USE)
MAILDROP_UNAVAILABLE = err("Cannot open the mailbox right now; try again later", CODE_SYS_TEMP)
MESSAGE_UNAVAILABLE = err("Cannot read this message right now; try again later", CODE_SYS_TEMP)
UPDATE_FAILED = err(
    "Some deleted messages were not removed; they are still in the mailbox", CODE_SYS_TEMP
)
SHUTTING_DOWN = err("Server shutting down; your deletions were not applied", CODE_SYS_TEMP)
TIMEOUT = err("Autologout: idle for too long; your deletions were not applied")
