"""``Intake``: an accepted message into its mailboxes and the outbound queue, in one durable
operation (issue 14).

The one write that answers a client: SMTP's 250 (and a report the queue makes) waits for it.
``accept`` finishes the content, publishes it and adds the mailbox messages and the queue entry
together; when it returns all of that is on stable storage, and when it raises none of it is
visible (the client is told to send again). A backend makes this one operation so that it can
group the messages that arrive together into one transaction and one flush.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from todoku.store.api import IncomingMessage, SpooledBlob
from todoku.store.content import BlobWriter

# Called after a commit that queued mail, with (queue id, due) of each new entry; from any
# thread (the backend's own), so a listener hands over to its event loop.
QueuedListener = Callable[[list[tuple[str, float]]], None]


class Intake(Protocol):
    async def accept(
        self, content: BlobWriter, message_for: Callable[[SpooledBlob], IncomingMessage]
    ) -> str:
        """Finish ``content`` (a writer from the same backend's ``Blobs``), then store
        ``message_for(blob)`` durably; returns the queue id (the blob id). ``message_for`` runs
        once the content is durable, possibly on another thread (it reads the clock).
        ``StorageFull`` (answer 452) or ``OSError`` (451) when it cannot be stored."""
        ...

    def on_queued(self, listener: QueuedListener | None) -> None:
        """Who hears of new queue entries (the outbound runner's wake-up); None: nobody."""
        ...
