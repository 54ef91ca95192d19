"""``Blobs``: message content, written once and read many times (issue 14).

A message's content is written through a ``BlobWriter`` while it arrives, made durable by
``finish`` (not yet readable by anyone: a crash from here leaves nothing a reader sees), and
made readable under its id by ``publish``, which is durable when it returns. Content is
immutable once published. Which rows refer to it, and when it may go, is the business of the
backend's ``Intake``, ``Mailboxes`` and ``Queue``: nothing here deletes published content.

A writer's ``write`` does not wait (it may hold the bytes in memory, or hand them to the
operating system); everything that waits for storage is ``async``. ``open_blocking`` is for code
already running on a worker thread (reading a message to send or to sign), never the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO, Protocol

from todoku.store.api import SpooledBlob


class BlobWriter(Protocol):
    @property
    def blob_id(self) -> str:
        """The id the content will have (known from the start: it goes in the Received field)."""
        ...

    def write(self, data: bytes) -> None:
        """Append ``data``. An error (disk full) is kept and raised by ``finish``."""
        ...

    async def finish(self) -> SpooledBlob:
        """Make what was written durable; ``StorageFull`` or ``OSError`` when it cannot be. Either
        way the writer is spent (after a failure nothing of it remains)."""
        ...

    def abort(self) -> None:
        """Forget what was written (the client gave up, or the message was refused)."""
        ...


class Blobs(Protocol):
    def new_writer(self) -> BlobWriter:
        """A writer for new content; ``StorageFull`` when none can be started."""
        ...

    async def publish(self, blobs: Sequence[SpooledBlob]) -> None:
        """Make finished content readable under its id, durably. On an error none of ``blobs``
        is published (and their finished content is gone: the clients are told to send again)."""
        ...

    async def open(self, blob_id: str) -> BinaryIO:
        """Published content for reading; ``FileNotFoundError`` when there is none under that id,
        ``ValueError`` for something that is no blob id. The caller closes it."""
        ...

    def open_blocking(self, blob_id: str) -> BinaryIO:
        """``open`` for code on a worker thread (it may block)."""
        ...
