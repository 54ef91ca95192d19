"""Which storage backend a configuration uses, opened for the server (``app.py``) and for the
commands (``cli/``): the one place that names an implementation.

SQLite and files in ``data_dir`` is the only backend so far (``store.sqlite_backend``); another
(PostgreSQL) is chosen here from the configuration, implements the interfaces of
``store.backend.Storage`` and passes the contract suites in ``tests/store/contract``.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from todoku.store.datadir import NewerSchema, check_data_dir, remove_before_copies
from todoku.store.sqlite import SqliteStore
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


def open_store(config: Config, *, server_start: bool = False) -> SqliteStore:
    """The SQLite store itself, for the backend's own tools (fsck, import, export) and what is
    not on the interfaces yet. An index written by a newer todoku is a ConfigError (one line,
    exit 2); at a server start on an index that needed no upgrade, the copies kept by the last
    upgrade are removed."""
    from todoku.config import ConfigError

    check_data_dir(config)
    try:
        store = SqliteStore(config.data_dir)
    except NewerSchema as exc:
        raise ConfigError(f"data_dir {config.data_dir}: {exc}") from None
    except sqlite3.Error as exc:
        # An upgrade runs in one transaction: one that fails leaves the index as it was.
        raise ConfigError(
            f"data_dir {config.data_dir}: cannot open or upgrade todoku.db ({exc});"
            " nothing was changed; run todoku fsck, or restore a backup"
        ) from None
    if server_start and store.upgraded_from is None:
        remove_before_copies(config.data_dir)
    return store
