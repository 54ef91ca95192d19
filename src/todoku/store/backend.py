"""``Storage``: the parts one storage backend provides, as ``app.py`` wires them (issue 14).

A backend (SQLite and files today: ``store.sqlite_backend``) implements each small interface
and passes its contract suite under ``tests/store/contract``: ``Directory`` (store.directory),
``Queue`` (store.queue), ``Blobs`` (store.content), ``Intake`` (store.intake) and ``Mailboxes``
(store.mailboxes). Code that uses storage is handed the one part it needs, never the backend.
"""

from __future__ import annotations

from typing import Protocol

from todoku.store.content import Blobs
from todoku.store.directory import Directory
from todoku.store.intake import Intake
from todoku.store.mailboxes import Mailboxes
from todoku.store.queue import Queue


class Storage(Protocol):
    @property
    def directory(self) -> Directory: ...
    @property
    def queue(self) -> Queue: ...
    @property
    def blobs(self) -> Blobs: ...
    @property
    def intake(self) -> Intake: ...
    @property
    def mailboxes(self) -> Mailboxes: ...

    async def close(self) -> None:
        """After ``queue.drain``: release everything (threads, connections)."""
        ...
