"""Which storage backend a configuration uses, opened for the server (``app.py``) and for the
commands (``cli/``): the one place that names an implementation.

SQLite and files in ``data_dir`` is the only backend so far (``store.sqlite_backend``); another
(PostgreSQL) is chosen here from the configuration, implements the interfaces of
``store.backend.Storage`` and passes the contract suites in ``tests/store/contract``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from todoku.store.datadir import open_store
from todoku.store.sqlite_backend import SqliteBackend

if TYPE_CHECKING:
    from todoku.config import Config


def open_storage(config: Config, *, server_start: bool = False) -> SqliteBackend:
    """The configured storage. ``server_start``: the server is starting (content whose writer
    never finished, from a crash, is removed; the copies kept by the last upgrade go). A data
    directory that cannot be used, or one written by a newer todoku, is a ConfigError."""
    backend = SqliteBackend(open_store(config, server_start=server_start), config.domains)
    if server_start:
        backend.sweep()
    return backend
