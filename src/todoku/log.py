"""Logging: one line per event, greppable like Postfix's log, with the session id on every line.

Passwords and message bodies are never logged; the SMTP adapter logs envelopes and replies only.

Every record is one line whatever a client sent: the formatter escapes control characters in the
message (CR, LF, ESC and the rest of C0, DEL, C1, and the Unicode line and paragraph separators)
as ``\\xNN`` / ``\\uNNNN``, so a user name with CR LF in it cannot write a forged line (issue 12).
This is the one place that does it, for every logger under ``todoku``; the code that logs passes
client text as it came. The lines of a traceback after the first are indented and escaped the
same way, so nothing a client wrote into an exception's text starts a line of its own.

Where the lines go (``[log]``): standard error, or ``file`` (appended to). ``format = "json"``
writes one JSON object per line with the text line's fields (``time``, ``logger``, ``message``,
and ``exception`` for a traceback), escaped the same way first. ``reopen()`` (on SIGHUP) opens the
file by its name again, so that a log rotated by renaming it (logrotate's default) gets its new
lines in the new file; when that fails, lines keep going to the old file and the caller says why.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

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


class _JsonFormatter(_Formatter):
    """One JSON object per line: the text line's fields, escaped as the text line is."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": self.formatTime(record),
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        if record.exc_info:
            fields["exception"] = escape_controls(super().formatException(record.exc_info))
        if record.stack_info:
            fields["stack"] = escape_controls(super().formatStack(record.stack_info))
        # The escaping leaves no control character for json to write as \n or \u2028 itself,
        # and non-ASCII text (a Japanese subject) stays readable.
        return json.dumps(fields, ensure_ascii=False)


class _ReopenableFileHandler(logging.StreamHandler[TextIO]):
    """Appends to a file; ``reopen`` opens it by name again (after logrotate renamed it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(self._open())

    def _open(self) -> TextIO:
        return open(self.path, "a", encoding="utf-8", errors="backslashreplace")

    def reopen(self) -> None:
        stream = self._open()  # first, so that a failure leaves the old file in use
        self.acquire()
        try:
            old, self.stream = self.stream, stream
        finally:
            self.release()
        old.close()

    def close(self) -> None:
        self.acquire()
        try:
            self.stream.close()
        finally:
            self.release()
        super().close()


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return _JsonFormatter()
    return _Formatter("%(asctime)s %(name)s: %(message)s")


def setup_logging(level: str = "info", file: Path | None = None, log_format: str = "text") -> None:
    """Send every ``todoku`` logger's lines to ``file`` (None: standard error) in ``log_format``.

    Raises OSError when the file cannot be opened; the handlers in use then stay as they were."""
    handler: logging.Handler
    handler = logging.StreamHandler(sys.stderr) if file is None else _ReopenableFileHandler(file)
    handler.setFormatter(_formatter(log_format))
    root = logging.getLogger("todoku")
    old = root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for previous in old:
        if isinstance(previous, _ReopenableFileHandler):
            previous.close()


def log_file_path() -> Path | None:
    """The file the log goes to now, or None (standard error)."""
    for handler in logging.getLogger("todoku").handlers:
        if isinstance(handler, _ReopenableFileHandler):
            return handler.path
    return None


def reopen() -> None:
    """Open the log file by its name again (SIGHUP); raises OSError, leaving the old one in use."""
    for handler in logging.getLogger("todoku").handlers:
        if isinstance(handler, _ReopenableFileHandler):
            handler.reopen()
