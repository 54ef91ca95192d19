"""Logging: one line per event, greppable like Postfix's log, with the session id on every line.

Passwords and message bodies are never logged; the SMTP adapter logs envelopes and replies only.
"""

from __future__ import annotations

import logging
import sys
import time


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


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger("todoku")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
