"""Why a session waiting for a client's next bytes got none, shared by the SMTP and POP3 links.

A session waiting for a command is the only kind that may be interrupted by shutdown: the server
cancels its task (``waiting_for_command`` tells the server which sessions those are), and the
session then says goodbye with its protocol's 421 / -ERR instead of dying silently. The waiting
itself lives in the links (``net/link.SessionLink.read``, behind ``SmtpLink`` and ``Pop3Link``): one idle timer per
connection instead of a timer per read.
"""

from __future__ import annotations

import enum


class Idle(enum.Enum):
    STOPPING = "stopping"  # the server is shutting down: say goodbye
    TIMED_OUT = "timed-out"  # the client said nothing for too long
