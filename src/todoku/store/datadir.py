"""Start-up check of the data directory: one plain sentence naming what is wrong, or None.

Checked before anything opens the database, so that a read-only mount or files owned by another
user give the administrator the fix (remount, chown) instead of a SQLite traceback later, in the
middle of someone's mail.
"""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from todoku.config import Config
    from todoku.store.sqlite import SqliteStore

# Files and directories the server writes to; each must be writable when it already exists.
WRITTEN_ENTRIES = ("todoku.db", "todoku.db-wal", "todoku.db-shm", "tmp", "messages", "run")


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _owner(path: Path) -> str:
    stat = path.stat()
    try:
        name = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        name = f"uid {stat.st_uid}"
    return f"owned by {name}, mode {stat.st_mode & 0o7777:04o}"


def data_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold todoku's data, as one line; None when it can."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return f"cannot create {path}: the file system is mounted read-only"
        return f"cannot create {path}: {exc.strerror}"
    if not path.is_dir():
        return f"{path} is not a directory"
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return f"{path} is on a read-only file system (remount it read-write)"
    except OSError:
        pass
    if not os.access(path, os.W_OK | os.X_OK):
        return (
            f"{path} is not writable by {_user()} ({_owner(path)});"
            f" fix with: chown -R {_user()} {path}"
        )
    for name in WRITTEN_ENTRIES:
        entry = path / name
        if entry.exists() and not os.access(entry, os.W_OK | (os.X_OK if entry.is_dir() else 0)):
            return (
                f"{entry} is not writable by {_user()} ({_owner(entry)});"
                f" fix with: chown -R {_user()} {path}"
            )
    probe = path / ".write-test"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror}"
    return None


def check_data_dir(config: Config) -> None:
    """Fail with one clear line (a ConfigError naming data_dir) if the directory cannot be used."""
    from todoku.config import ConfigError

    problem = data_dir_problem(config.data_dir)
    if problem is not None:
        raise ConfigError(f"data_dir: {problem}")


def open_store(config: Config) -> SqliteStore:
    """The embedded store, for the server and for every command that reads or changes it (the
    commands import only this, not the server's modules)."""
    from todoku.store.sqlite import SqliteStore

    check_data_dir(config)
    return SqliteStore(config.data_dir)
