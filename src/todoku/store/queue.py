"""``Queue``: mail waiting to leave for other hosts, and what happened to each recipient (issue 14).

An entry is made by the backend's ``Intake`` (with the message, in one durable operation) and
read here as a ``QueueEntry``: its envelope, each recipient's state (``pending``, ``delivered``,
``failed``) with the last result, when to try next, whether an administrator holds it. A
recipient in a final state never goes back to ``pending``. An entry leaves the queue when it is
retired (every recipient final and every report owed for them stored) or deleted.

Every method is ``async`` and each write is durable when it returns; a backend may group writes
that arrive together into one transaction (one fsync), but each is applied or refused alone.
Writes are not cancelled with their caller: once a remote host said 250, the record lands even
while the server stops (``drain`` waits for them).

Several nodes: ``begin_attempt`` is where a node claims an entry before dialling. Today it only
counts the attempt and moves ``next_attempt`` past it (so a crash retries later, not in a loop);
a backend shared by several nodes would take a lease there and return 0 while another holds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from todoku.store.api import QueueEntry, RecipientResult


@dataclass(frozen=True, slots=True)
class Due:
    """What the scheduler needs of an entry that is not held."""

    queue_id: str
    next_attempt: float
    received_at: float
    delay_warned: bool


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One recipient's result of one attempt, as ``record_results`` stored it."""

    time: float
    recipient: str
    domain: str
    state: str
    phase: str
    code: int | None
    enhanced: str
    text: str
    remote_mta: str
    reason: str


class Queue(Protocol):
    # reading
    async def entries(self) -> list[QueueEntry]:
        """Every entry, oldest first."""
        ...

    async def get(self, queue_id: str) -> QueueEntry | None: ...
    async def due(self) -> list[Due]:
        """Every entry that is not held (any order)."""
        ...

    async def history(self, queue_id: str) -> list[AttemptRecord]:
        """Every result recorded for the entry, in the order recorded."""
        ...

    # delivery
    async def begin_attempt(self, queue_id: str, started_at: float, next_attempt: float) -> int:
        """Count an attempt and move ``next_attempt`` BEFORE dialling (see the module docstring);
        the attempt's number, 0 when the entry is gone."""
        ...

    async def record_results(
        self,
        queue_id: str,
        results: Sequence[RecipientResult],
        when: float,
        *,
        reported: Sequence[str] = (),
        retire: bool = False,
    ) -> bool:
        """Store each pending recipient's result (a final one is never overwritten) and add it
        to the history; then, in the same transaction, mark ``reported`` as reported and, with
        ``retire``, retire the entry if it is done. True when (with ``retire``) the entry is
        gone. An entry deleted meanwhile is left deleted."""
        ...

    async def end_attempt(self, queue_id: str, next_attempt: float, last_error: str) -> None:
        """After an attempt that left recipients pending: when to try again, and why."""
        ...

    async def mark_reported(
        self, queue_id: str, addresses: Sequence[str], *, retire: bool = False
    ) -> bool:
        """The reports owed for these (final) recipients are stored; with ``retire``, retire the
        entry in the same transaction if it is done. True when (with ``retire``) it is gone."""
        ...

    async def mark_delay_warned(self, queue_id: str) -> None:
        """The delay warning (RFC 3464 action ``delayed``) went out; it goes out once."""
        ...

    async def retire(self, queue_id: str) -> bool:
        """Remove the entry once every recipient is final and reported. True when it is gone
        (now, or before: retiring is repeatable), False while work remains."""
        ...

    # administration
    async def hold(self, queue_id: str, held: bool, now: float) -> bool:
        """Keep the entry without trying it; released (``held=False``) it is due at ``now`` at
        the latest. False when there is no such entry."""
        ...

    async def flush(self, queue_id: str | None, domain: str | None, now: float) -> int:
        """Make entries due at ``now``: one, those with a pending recipient at ``domain``, or
        all (both None). How many."""
        ...

    async def delete(self, queue_id: str) -> bool:
        """Remove the entry whatever its state (no report); False when there is none."""
        ...

    async def drain(self) -> None:
        """Wait until every write handed over so far is durable (and its clean-up done)."""
        ...
