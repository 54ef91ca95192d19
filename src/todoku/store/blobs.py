"""Message content as files: write under tmp/, fsync, then rename into messages/ and fsync the directory.

Crash analysis, in the order the steps happen:
1. writing ``tmp/<id>``: a crash leaves a partial file in tmp/, which no row names; start-up
   sweeps tmp/. The client got no 250 and sends again.
2. ``fsync(file)``: the bytes are durable, the name is not yet.
3. ``rename(tmp/<id> → messages/<bucket>/<id>)`` and ``fsync(messages/<bucket>)``: the name is
   durable. A crash here leaves a complete file that no row names yet (an orphan ``fsck`` reports;
   the client got no 250).
4. the database commit (WAL fsync) makes the rows that point at the file durable; only then 250.

A failure (not a crash) at steps 1 to 4 is cleaned up at once: the temporary file and any file
already renamed for that group are removed, since no row names them and every client in the group
is answered ``452``/``451`` and sends again. ``StorageFaults`` lets tests inject an error (or a
simulated crash) at each step; ``fsck`` and the crash test check the outcomes listed above.

The bucket is the first five hex digits of the id, which start with the time in seconds: messages
arriving together share a directory, so one directory fsync covers a whole group commit.

Small content (``INLINE_LIMIT``) skips steps 1 to 3: ``finish`` keeps it in memory and returns a
``HeldBlob``, and the group's database transaction (step 4) writes it into the ``contents`` table
together with the rows that refer to it (``store.migrations``, version 4). A group of concurrent
accepts then waits for ONE fsync, the WAL's, before its 250s; a crash before that commit leaves
nothing anywhere (no file, no row), and after it the content and its rows are there together.
Readers (``SqliteStore.open_blob``) look in ``contents`` first, then for the file.

Files are created 0600 and directories 0700 whatever the umask (``datadir``: they hold mail).
A blob id is exactly 16 upper-case hex digits (``new_blob_id``); ``path_of`` refuses anything
else, so an id read from somewhere else (a backup to restore) never names a path outside
``messages/``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from todoku.store.api import SpooledBlob, StorageFull
from todoku.store.datadir import DIR_MODE, make_private_dir, open_private


class StorageFaults(Protocol):
    """Called just before each storage step; raising here is a fault at that step (tests only)."""

    def before(self, step: str, path: Path) -> None: ...


# The steps of the module docstring, in order, as ``StorageFaults.before`` names them.
STEP_WRITE = "write"
STEP_FSYNC_FILE = "fsync file"
STEP_RENAME = "rename"
STEP_FSYNC_DIR = "fsync dir"
STEP_DB_COMMIT = "db commit"


class NoFaults:
    def before(self, step: str, path: Path) -> None:
        return None


# What ``new_blob_id`` makes: eight hex digits of the time in seconds (until 2106), eight random.
BLOB_ID = re.compile(r"[0-9A-F]{16}")


def new_blob_id() -> str:
    return f"{int(time.time()):08X}{secrets.token_hex(4).upper()}"


def is_blob_id(text: str) -> bool:
    return BLOB_ID.fullmatch(text) is not None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise_storage(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull(exc.errno, "Insufficient system storage") from exc
    raise exc


# Content up to this size is held in memory and created, written, fsynced and closed in one go
# by ``finish()``, which the SMTP path runs in a pool thread: the file's creation (inode and
# directory entry) then stays off the event loop's thread (issue 7 profile: about 5% of the
# loop at 1 KiB). Larger content is written to the file as it arrives, as before. Either way the
# steps, their order and the crash analysis above are unchanged: the file exists only in tmp/
# until it is complete and fsynced.
HELD_IN_MEMORY = 256 * 1024

# Content up to this size goes into the index's transaction instead of a file (module
# docstring): one fsync per group instead of three in a row. Larger content keeps the file path:
# every byte in the WAL is written twice (the WAL, then the checkpoint into the database file),
# and the index is read whole by each backup snapshot. 64 KiB is issue 14's suggestion, not yet
# measured against other limits; bench/run.py's 100 KiB workload stays on the file path.
INLINE_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class HeldBlob(SpooledBlob):
    """Finished content kept in memory until the transaction that publishes it (``INLINE_LIMIT``)."""

    data: bytes = b""


class FileBlobWriter:
    def __init__(self, store: FileBlobStore) -> None:
        self.blob_id = new_blob_id()
        self.temp_path = store.temp_path_of(self.blob_id)
        self._faults = store.faults
        self._file: BinaryIO | None = None  # opened by _spill() or finish()
        self._held: list[bytes] = []
        self._held_size = 0
        self._hash = hashlib.sha256()
        self._size = 0
        self._failed: OSError | None = None
        self._finished = False

    def write(self, data: bytes) -> None:
        if self._failed is not None or self._finished:
            return
        self._hash.update(data)
        self._size += len(data)
        if self._file is None:
            self._held.append(data)
            self._held_size += len(data)
            if self._held_size <= HELD_IN_MEMORY:
                return
            data = self._take_held()
            try:
                self._file = open_private(self.temp_path)  # closed in finish/abort
            except OSError as exc:
                self._failed = exc
                return
        try:
            self._faults.before(STEP_WRITE, self.temp_path)
            self._file.write(data)
        except OSError as exc:
            self._failed = exc

    def _take_held(self) -> bytes:
        held = self._held
        data = held[0] if len(held) == 1 else b"".join(held)
        self._held = []
        self._held_size = 0
        return data

    @property
    def inline(self) -> bool:
        """Whether ``finish`` will keep the content for the index (no file, no fsync)."""
        return self._failed is None and self._file is None and self._size <= INLINE_LIMIT

    def finish(self) -> SpooledBlob:
        assert not self._finished
        if self.inline:
            self._finished = True
            return HeldBlob(self.blob_id, self._size, self._hash.hexdigest(), self._take_held())
        self._finished = True
        try:
            if self._failed is not None:
                _raise_storage(self._failed)
            if self._file is None:
                self._file = open_private(self.temp_path)  # closed below or in abort
                self._faults.before(STEP_WRITE, self.temp_path)
                self._file.write(self._take_held())
            self._file.flush()
            self._faults.before(STEP_FSYNC_FILE, self.temp_path)
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        except OSError as exc:
            self.abort()
            _raise_storage(exc)
        return SpooledBlob(self.blob_id, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        self._held = []
        self._finished = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        try:
            os.unlink(self.temp_path)
        except OSError:
            pass


class FileBlobStore:
    def __init__(self, root: Path, faults: StorageFaults | None = None) -> None:
        self.root = root
        self.faults: StorageFaults = faults or NoFaults()
        self.tmp_dir = root / "tmp"
        self.messages_dir = root / "messages"
        for path in (self.root, self.tmp_dir, self.messages_dir):
            make_private_dir(path)
        # Buckets seen to exist: buckets are never removed, and a stat per message in the group
        # commit costs a GIL round trip in the commit thread (bench/, issue 7).
        self._buckets: set[str] = set()

    def sweep_tmp(self) -> int:
        """Remove content that was never committed (a crash before step 4 above)."""
        removed = 0
        for entry in self.tmp_dir.iterdir():
            try:
                entry.unlink()
                removed += 1
            except OSError:
                pass
        return removed

    def new_writer(self) -> FileBlobWriter:
        try:
            return FileBlobWriter(self)
        except OSError as exc:
            _raise_storage(exc)
            raise

    def path_of(self, blob_id: str) -> Path:
        if not is_blob_id(blob_id):
            raise ValueError(f"not a message file id: {blob_id[:40]!r}")
        return self.messages_dir / blob_id[:5] / blob_id

    def temp_path_of(self, blob_id: str) -> Path:
        """Where a writer keeps content until it is published (``FileBlobWriter``)."""
        if not is_blob_id(blob_id):
            raise ValueError(f"not a message file id: {blob_id[:40]!r}")
        return self.tmp_dir / blob_id

    def publish(self, blobs: list[SpooledBlob]) -> None:
        """Steps 3 of the module docstring for a group: rename all, then fsync each directory once.
        ``HeldBlob``s are not files: the caller's transaction writes them.

        On an error nothing of the group stays published (see ``unpublish``)."""
        dirs: set[Path] = set()
        blobs = [b for b in blobs if not isinstance(b, HeldBlob)]
        if not blobs:
            return
        try:
            for blob in blobs:
                final = self.path_of(blob.blob_id)
                bucket = final.parent
                if bucket.name not in self._buckets:
                    if not bucket.is_dir():
                        bucket.mkdir(mode=DIR_MODE, exist_ok=True)
                        dirs.add(self.messages_dir)
                    self._buckets.add(bucket.name)
                self.faults.before(STEP_RENAME, final)
                os.rename(self.temp_path_of(blob.blob_id), final)
                dirs.add(bucket)
            for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
                self.faults.before(STEP_FSYNC_DIR, directory)
                fsync_dir(directory)
        except Exception:
            self.unpublish(blobs)
            raise

    def unpublish(self, blobs: list[SpooledBlob]) -> None:
        """Remove a group whose commit failed: no row names these files and no client got 250."""
        for blob in blobs:
            if isinstance(blob, HeldBlob):
                continue
            for path in (self.path_of(blob.blob_id), self.temp_path_of(blob.blob_id)):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def open(self, blob_id: str) -> BinaryIO:
        return open(self.path_of(blob_id), "rb")  # the caller closes it

    def delete(self, blob_id: str) -> None:
        try:
            os.unlink(self.path_of(blob_id))
        except FileNotFoundError:
            pass
