"""Reading and signing the message an attempt sends.

A small message (up to ``READ_WHOLE_LIMIT``) is read once, into memory, when its attempt starts:
the hop count, the DKIM signature and the SMTP transaction then share one read of the file
(issue 7). A larger one is streamed from the file in ``READ_PIECE`` pieces.

DKIM signing happens only for what an authenticated user of ours submitted, as the server
recorded when it accepted the message (``QueueEntry.submitted_by``), never by reading the
message's own header fields (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from todoku.ingest import HEADER_SCAN_LIMIT, scan_headers
from todoku.queue.model import PENDING
from todoku.store.api import QueueEntry
from todoku.store.content import Blobs

log = logging.getLogger("todoku.queue")

READ_PIECE = 256 * 1024
READ_WHOLE_LIMIT = 128 * 1024


@dataclass(frozen=True, slots=True)
class Loaded:
    entry: QueueEntry | None
    content: bytes | None  # the whole message when small, else None
    hops: int  # Received: header fields
    signature: bytes | None = None  # DKIM header fields (small messages, signing on)


class MessageContent:
    def __init__(self, blobs: Blobs, signer: Callable[[bytes, str], bytes] | None) -> None:
        self.blobs = blobs  # read on worker threads (open_blocking)
        self.signer = signer  # DKIM: (message, sender) → header fields to send in front

    def load(self, entry: QueueEntry) -> Loaded:
        """The entry's content, unless there is nothing to send: on a worker thread."""
        if entry.held or not any(r.state == PENDING for r in entry.recipients):
            return Loaded(entry, None, 0)
        with self.blobs.open_blocking(entry.blob_id) as handle:
            if entry.size <= READ_WHOLE_LIMIT:
                content = handle.read()
                head = content[:HEADER_SCAN_LIMIT]
            else:
                content, head = None, handle.read(HEADER_SCAN_LIMIT)
        end = head.find(b"\r\n\r\n")
        hops = scan_headers(head if end < 0 else head[: end + 2]).received_count
        signature = None
        if content is not None and self.signs(entry):
            # Signed here, on the reader's thread, rather than in a thread hop of its own
            # just before sending: py-spy put that hop at 10% of the event loop's busy time.
            signature = self.sign(content, entry)
        return Loaded(entry, content, hops, signature)

    def signs(self, entry: QueueEntry) -> bool:
        """DKIM-sign only what an authenticated user of ours submitted, as the server recorded
        when it accepted the message (``submitted_by``): mail forwarded from the MX, reports and
        local injection leave unsigned, whatever their header fields say (issue 12: a search of
        the Received field for "(Authenticated sender: " was an oracle anyone could steer)."""
        return self.signer is not None and bool(entry.sender) and entry.submitted_by is not None

    async def prefix(
        self, entry: QueueEntry, content: bytes | None, signature: bytes | None
    ) -> bytes:
        """The DKIM header fields to send in front of the message (b"" when not signing)."""
        if not self.signs(entry):
            return b""
        if signature is not None:
            return signature
        if content is not None:
            return await asyncio.to_thread(self.sign, content, entry)
        return await asyncio.to_thread(self._signature, entry)

    def _signature(self, entry: QueueEntry) -> bytes:
        try:
            with self.blobs.open_blocking(entry.blob_id) as handle:
                content = handle.read()
        except OSError:
            log.exception("%s: cannot read the message to sign it; sending unsigned", entry.id)
            return b""
        return self.sign(content, entry)

    def sign(self, content: bytes, entry: QueueEntry) -> bytes:
        assert self.signer is not None
        try:
            return self.signer(content, entry.sender)
        except Exception:
            log.exception("%s: DKIM signing failed; sending unsigned", entry.id)
            return b""

    def stream(self, blob_id: str, prefix: bytes = b"") -> Iterator[bytes]:
        if prefix:
            yield prefix
        with self.blobs.open_blocking(blob_id) as handle:
            while piece := handle.read(READ_PIECE):
                yield piece
