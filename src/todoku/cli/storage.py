"""Storage for one command: the configured backend (``store.backends``) and an event loop to
await its interfaces on.

A command is synchronous (click), the interfaces are async: ``with command_storage(config) as
storage:`` opens the backend, and ``storage.run(storage.directory.get_user(key))`` awaits one
call. Errors (``fail``, exit status) are decided between calls, outside any coroutine, so a
command's exit is never an exception inside the event loop. Leaving the block waits for the
queue's writes and closes the backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from todoku.store.sqlite_backend import SqliteBackend

if TYPE_CHECKING:
    from todoku.config import Config
    from todoku.store.backend import Storage
    from todoku.store.content import Blobs
    from todoku.store.directory import Directory
    from todoku.store.intake import Intake
    from todoku.store.queue import Queue
    from todoku.store.sqlite import SqliteStore

T = TypeVar("T")


class CommandStorage:
    def __init__(self, backend: Storage, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        # The embedded store itself, for what is not on the interfaces yet (None on PostgreSQL).
        self.sqlite_store: SqliteStore | None = (
            backend.store if isinstance(backend, SqliteBackend) else None
        )
        self.directory: Directory = backend.directory
        self.queue: Queue = backend.queue
        self.blobs: Blobs = backend.blobs
        self.intake: Intake = backend.intake
        self._loop = loop

    def run(self, call: Awaitable[T]) -> T:
        return self._loop.run_until_complete(call)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.backend.close())
        finally:
            self._loop.close()


@contextmanager
def command_storage(config: Config) -> Iterator[CommandStorage]:
    loop = asyncio.new_event_loop()
    try:
        if config.store.backend == "sqlite":
            from todoku.store.backends import open_storage

            backend: Storage = open_storage(config)
        else:  # app.py opens the others (a node's pool, the schema check)
            from todoku.app import open_storage as open_configured

            backend = loop.run_until_complete(open_configured(config, migrate=False))
    except BaseException:
        loop.close()
        raise
    storage = CommandStorage(backend, loop)
    try:
        yield storage
    finally:
        storage.close()
