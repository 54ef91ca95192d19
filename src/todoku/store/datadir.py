"""The data directory: its start-up check, and the modes of what is created in it.

The check runs before anything opens the database, so that a read-only mount or files owned by
another user give the administrator the fix (remount, chown) instead of a SQLite traceback later,
in the middle of someone's mail: one plain sentence naming what is wrong, or None.

Modes (issue 12): the directory holds every message and every password hash, so everything in it
is for the server's own user only, whatever the umask: directories 0700, files 0600. Two layers
make it so. Code that creates files in the store passes those modes itself (``make_private_dir``,
``open_private``), so the store is private even when used as a library. And the server and
every command that opens the store add 077 to the process umask first (``check_data_dir``),
which covers what other code creates there (``run/`` state, keys, certificates) without each
writer having to remember. SQLite creates the ``-wal`` and ``-shm`` files with the database
file's own mode, so a database created 0600 keeps private journals. Existing modes are not
changed at start-up (an administrator may have chosen them): ``todoku fsck`` reports modes open
to group or others and ``--repair`` removes those bits, e.g. for a directory an older version
made under umask 022.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from todoku.store import migrations

if TYPE_CHECKING:
    from todoku.config import Config

log = logging.getLogger("todoku.store")

FILE_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_UMASK = 0o077  # the bits no file or directory of todoku's gives to group or others

# Files and directories the server writes to; each must be writable when it already exists.
WRITTEN_ENTRIES = ("todoku.db", "todoku.db-wal", "todoku.db-shm", "tmp", "messages", "run")


def restrict_umask() -> None:
    """Add 077 to the process umask, so that whatever this process creates from now on is for
    its own user only. Process-wide: called once at start-up, before any file is created."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)


def make_private_dir(path: Path) -> None:
    """``mkdir -p`` where every directory created is 0700 (``Path.mkdir(parents=True)`` gives the
    parents it creates the umask's mode); directories that already exist are left as they are."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise


def open_private(path: Path, exclusive: bool = True) -> BinaryIO:
    """A new file opened for writing, mode 0600 whatever the umask. With ``exclusive`` it must not
    exist yet (a fresh name under tmp/); otherwise an existing file (a temporary name left by an
    interrupted run) is truncated and its mode set to 0600 as well."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)
    try:
        if not exclusive:
            os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when it does not exist; an existing file is left as it
    is. Used before SQLite opens a database, since SQLite creates it with 0644 less the umask."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    except FileExistsError:
        pass


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
        make_private_dir(path)
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
        probe.unlink(missing_ok=True)
        with open_private(probe) as handle:
            handle.write(b"ok")
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror}"
    return None


def check_data_dir(config: Config) -> None:
    """Fail with one clear line (a ConfigError naming data_dir) if the directory cannot be used.

    Every process that uses the data directory calls this first, so it also restricts the
    umask (module docstring)."""
    from todoku.config import ConfigError

    restrict_umask()
    problem = data_dir_problem(config.data_dir)
    if problem is not None:
        raise ConfigError(f"data_dir: {problem}")


# ---------------------------------------------------------------- schema version (issue 16)
#
# The index records its schema in SQLite's ``PRAGMA user_version`` (0: written before versions
# existed). Opening an older index migrates it in place, after a consistent copy of it is taken
# with SQLite's backup API into ``todoku.db.before-v<SCHEMA_VERSION>``; the copy is kept until the
# server next starts on the migrated index, then removed. An index written by a newer todoku is
# refused: an older one could misread it. The versions and what each adds are the numbered list
# in ``store.migrations``; SCHEMA_VERSION is its last number.

SCHEMA_VERSION = migrations.SCHEMA_VERSION
BEFORE_COPY_PREFIX = "todoku.db.before-v"


class NewerSchema(Exception):
    """The index was written by a newer todoku (its schema version is the argument)."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"this data directory was written by a newer todoku (schema {version});"
            " upgrade todoku or restore a backup"
        )
        self.version = version


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def before_upgrade(conn: sqlite3.Connection, db_path: Path) -> int | None:
    """Called when the store opens, before it creates or migrates anything. Refuses a newer
    index (NewerSchema); for an older one (or one the store would change) takes the copy and
    returns the version found; None for a current or brand-new index."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise NewerSchema(version)
    if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
        return None  # brand new: nothing to keep
    if not migrations.needs_change(conn, version):
        return None
    copy = db_path.with_name(f"{BEFORE_COPY_PREFIX}{SCHEMA_VERSION}")
    if not copy.exists():  # one left by an interrupted upgrade is the older, truer copy
        _backup(conn, copy)
    log.warning(
        "upgrading the index %s from schema %d to %d; a copy of it is kept in %s"
        " until the next start",
        db_path,
        version,
        SCHEMA_VERSION,
        copy,
    )
    return version


def after_upgrade(conn: sqlite3.Connection) -> None:
    """Record the current schema version (after the store's migrations succeeded)."""
    if schema_version(conn) < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _backup(conn: sqlite3.Connection, copy: Path) -> None:
    """A consistent copy (sqlite3's online backup), durable, then renamed into place."""
    partial = copy.with_name(copy.name + ".partial")
    partial.unlink(missing_ok=True)
    create_private_file(partial)
    target = sqlite3.connect(partial)
    try:
        conn.backup(target)
    finally:
        target.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, copy)
    fd = os.open(copy.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_before_copies(data_dir: Path) -> list[Path]:
    """At a server start on an index that needed no upgrade: the copies taken by the last
    upgrade have served their purpose."""
    removed = []
    for copy in sorted(data_dir.glob(f"{BEFORE_COPY_PREFIX}*")):
        copy.unlink(missing_ok=True)
        removed.append(copy)
        log.info("removed %s, the index as it was before the last upgrade", copy)
    return removed
