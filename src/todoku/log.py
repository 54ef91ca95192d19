"""Logging: one line per event, greppable like Postfix's log, with the session id on every line.

Passwords and message bodies are never logged; the SMTP adapter logs envelopes and replies only.
"""

from __future__ import annotations

import logging
import sys
import time


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        t = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger("todoku")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
