"""Logging: one line per event, greppable like Postfix's log, with the session id on every line.

Passwords and message bodies are never logged; the SMTP adapter logs envelopes and replies only.

Every record is one line whatever a client sent: the formatter escapes control characters in the
message (CR, LF, ESC and the rest of C0, DEL, C1, and the Unicode line and paragraph separators)
as ``\\xNN`` / ``\\uNNNN``, so a user name with CR LF in it cannot write a forged line (issue 12).
This is the one place that does it, for every logger under ``todoku``; the code that logs passes
client text as it came. The lines of a traceback after the first are indented and escaped the
same way, so nothing a client wrote into an exception's text starts a line of its own.
"""

from __future__ import annotations

import logging
import sys
import time

# The characters a log line must not carry raw: they end the line, or drive the terminal.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _CONTROLS}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape: safe on one log line."""
    # isprintable() is False for every character escaped here (and for a few harmless ones,
    # which translate() leaves alone): the usual line is checked in one pass and returned as is.
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


class _Formatter(logging.Formatter):
    _second = -1
    _second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # strftime once per second, not per line: at hundreds of lines a second it showed in
        # the SMTP profile (issue 7).
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _continuation(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _continuation(super().formatStack(stack_info))


def _continuation(text: str) -> str:
    """Lines that follow a record's first line (a traceback): indented, and escaped like it."""
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger("todoku")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
