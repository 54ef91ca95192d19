"""Waiting for a client's next bytes, shared by the SMTP and POP3 sessions.

A session waiting for a command is the only kind that may be interrupted by shutdown: the server
cancels its task (``waiting_for_command`` tells the server which sessions those are), and the
session then says goodbye with its protocol's 421 / -ERR instead of dying silently.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol


class Idle(enum.Enum):
    STOPPING = "stopping"  # the server is shutting down: say goodbye
    TIMED_OUT = "timed-out"  # the client said nothing for too long


class IdleSession(Protocol):
    reader: asyncio.StreamReader
    waiting_for_command: bool

    def stopping(self) -> bool: ...


async def read_next(session: IdleSession, size: int, timeout: float) -> bytes | Idle:
    """The next bytes from the client (``b""`` at its end), or why there are none."""
    if session.stopping():
        return Idle.STOPPING
    session.waiting_for_command = True
    try:
        async with asyncio.timeout(timeout):
            return await session.reader.read(size)
    except asyncio.CancelledError:
        if not session.stopping():
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return Idle.STOPPING
    except TimeoutError:
        return Idle.TIMED_OUT
    finally:
        session.waiting_for_command = False
