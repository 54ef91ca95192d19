"""``todoku backup DEST`` and ``todoku restore SRC``: online, consistent, incremental backups.

A backup directory holds::

    todoku.db         a snapshot of the index (SQLite's online backup API: one consistent moment,
                      taken while the server keeps writing)
    messages/B/ID     a copy of every message file the snapshot refers to
    manifest.json     when, from where, and the size and SHA-256 of every message file

Consistency: the snapshot is taken first; then the files it names are copied. Content is
immutable, so a file copied later is still the one the snapshot meant; each copy is checked
against the SHA-256 in the snapshot. A file purged between snapshot and copy (deleted mail past
its retention) is dropped from the backup's index and listed in the manifest, never left dangling.
Incremental: a file already in DEST with the right size and checksum (per the previous manifest)
is not copied again. Every file is written under a temporary name, fsynced and renamed; the
manifest is written last, so an interrupted backup leaves the previous manifest in charge.

Restore copies messages from a backup into a data directory (the server may be running) without
duplicating what is there: a message already in its mailbox (same content file, or the same bytes)
is skipped. A mailbox that does not exist yet comes back with its UIDVALIDITY and UIDs, so POP3
clients do not fetch everything again; into an existing mailbox messages get new UIDs.

A backup holds mail and password hashes: it is written 0700/0600 whatever the umask, as the data
directory is. Restore trusts nothing in the backup to name a path: before it writes anything it
checks that every content id in the backup's index has the exact shape ``blobs.py`` makes (16
upper-case hex digits, so ``messages/<first five>/<id>`` stays inside both directories) and that
the database, ``messages/``, its buckets and the message files it will read are real
directories and regular files, not symbolic links that could point anywhere. A backup that
fails either check is refused whole with one line; nothing is restored from it. (Hard links
cannot point outside what their maker could read, and snapshot tools such as rsnapshot use them,
so they are accepted.)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from todoku.store.blobs import FileBlobStore, fsync_dir, is_blob_id
from todoku.store.datadir import (
    DIR_MODE,
    FILE_MODE,
    PRIVATE_UMASK,
    create_private_file,
    make_private_dir,
    open_private,
)

Progress = Callable[[str, int, int], None]
MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot go on; the message names the path and the reason."""


def _quiet(phase: str, done: int, total: int) -> None:
    return None


def _open_source(source: Path) -> BinaryIO:
    """Open a file to copy, refusing a symbolic link in its last component."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return os.fdopen(fd, "rb")


def _copy_checked(source: Path, target: Path) -> tuple[int, str]:
    """Copy through ``target.tmp`` (fsync, rename); returns the size and SHA-256 of what was read."""
    temp = target.with_name(target.name + ".tmp")
    digest = hashlib.sha256()
    size = 0
    with _open_source(source) as reader, open_private(temp, exclusive=False) as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temp, target)
    return size, digest.hexdigest()


def _write_json(path: Path, data: object) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open_private(temp, exclusive=False) as handle:
        handle.write(json.dumps(data, indent=1, sort_keys=True).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def read_manifest(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory / MANIFEST}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{directory / MANIFEST}: not a todoku backup manifest (format {FORMAT})")
    return data


@dataclass
class BackupResult:
    destination: Path
    messages: int = 0
    files: int = 0
    copied: int = 0
    copied_bytes: int = 0
    reused: int = 0
    purged_meanwhile: list[str] = field(default_factory=list)
    damaged_in_source: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            (
                f"backup in {self.destination}: {self.messages} messages in {self.files} files;"
                f" copied {self.copied} new files ({self.copied_bytes} bytes),"
                f" {self.reused} already there; {self.seconds:.1f}s"
            ),
        ]
        if self.purged_meanwhile:
            out.append(
                f"{len(self.purged_meanwhile)} deleted message(s) were purged meanwhile and left out"
            )
        for blob_id in self.damaged_in_source:
            out.append(
                f"WARNING: message file {blob_id} is damaged in the data directory (run todoku fsck)"
            )
        return out


def backup(data_dir: Path, destination: Path, progress: Progress | None = None) -> BackupResult:
    progress = progress or _quiet
    started = time.monotonic()
    source_db = data_dir / "todoku.db"
    if not source_db.is_file():
        raise BackupError(f"{source_db}: no database here (wrong data_dir?)")
    try:
        make_private_dir(destination / "messages")
    except OSError as exc:
        raise BackupError(
            f"{destination}: cannot create the backup directory: {exc.strerror}"
        ) from None
    previous = read_manifest(destination) or {}
    known = previous.get("blobs", {})
    assert isinstance(known, dict)
    result = BackupResult(destination)

    # 1. The snapshot: SQLite copies one consistent state while writers go on.
    snapshot = destination / "todoku.db.tmp"
    snapshot.unlink(missing_ok=True)
    create_private_file(snapshot)  # before SQLite creates it with the umask's mode
    source = sqlite3.connect(f"file:{source_db}?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(snapshot)
    try:
        # One step (pages=-1) under one read transaction: WAL lets the server keep committing,
        # while a stepped copy would restart after every write and might never finish under load.
        source.backup(target, pages=-1)
    finally:
        source.close()
    try:
        blobs = target.execute("SELECT id, size, sha256 FROM blobs ORDER BY id").fetchall()
        result.messages = target.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

        # 2. The files the snapshot names, copied once, checked against the snapshot.
        manifest_blobs: dict[str, dict[str, object]] = {}
        buckets: set[Path] = set()
        for done, (blob_id, size, sha256) in enumerate(blobs, 1):
            progress("copying message files", done, len(blobs))
            if not is_blob_id(blob_id):
                raise BackupError(
                    f"{source_db}: content id {blob_id[:40]!r} is not one todoku makes;"
                    " run todoku fsck"
                )
            copy = destination / "messages" / blob_id[:5] / blob_id
            entry = known.get(blob_id)
            if isinstance(entry, dict) and entry.get("sha256") == sha256:
                try:
                    info = copy.lstat()
                except FileNotFoundError:
                    info = None
                if info is not None and stat.S_ISREG(info.st_mode) and info.st_size == size:
                    if info.st_mode & PRIVATE_UMASK:  # copied by a version that left it 0644
                        os.chmod(copy, FILE_MODE)
                    result.reused += 1
                    manifest_blobs[blob_id] = {"size": size, "sha256": sha256}
                    continue
            copy.parent.mkdir(mode=DIR_MODE, exist_ok=True)
            buckets.add(copy.parent)
            try:
                original = data_dir / "messages" / blob_id[:5] / blob_id
                copied_size, copied_sha = _copy_checked(original, copy)
            except FileNotFoundError:
                result.purged_meanwhile.append(blob_id)
                continue
            if (copied_size, copied_sha) != (size, sha256):
                result.damaged_in_source.append(blob_id)
            result.copied += 1
            result.copied_bytes += copied_size
            manifest_blobs[blob_id] = {"size": size, "sha256": sha256}
        for bucket in buckets:
            fsync_dir(bucket)
        fsync_dir(destination / "messages")
        if result.purged_meanwhile:
            # Purged only after being deleted past retention: leave them out of this backup.
            with target:
                for blob_id in result.purged_meanwhile:
                    target.execute("DELETE FROM messages WHERE blob_id = ?", (blob_id,))
                    queued = [
                        r[0]
                        for r in target.execute(
                            "SELECT id FROM queue WHERE blob_id = ?", (blob_id,)
                        )
                    ]
                    for queue_id in queued:
                        target.execute(
                            "DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,)
                        )
                        target.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
                    target.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
            result.messages = target.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        target.close()
    with open(snapshot, "rb+") as handle:
        os.fsync(handle.fileno())
        os.fchmod(handle.fileno(), FILE_MODE)
    os.replace(snapshot, destination / "todoku.db")
    result.files = len(manifest_blobs)

    # 3. The manifest last: until it is replaced, the previous one describes a complete backup.
    db_size, db_sha = _sha_of(destination / "todoku.db")
    _write_json(
        destination / MANIFEST,
        {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": str(data_dir),
            "database": {"size": db_size, "sha256": db_sha},
            "messages": result.messages,
            "blobs": manifest_blobs,
            "left_out": result.purged_meanwhile,
        },
    )
    result.seconds = time.monotonic() - started
    return result


def _sha_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# ---------------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    source: Path
    restored: int = 0
    skipped: int = 0
    mailboxes: set[str] = field(default_factory=set)
    users: int = 0
    queue_entries: int = 0
    damaged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            (
                f"restored {self.restored} messages into {len(self.mailboxes)} mailbox(es);"
                f" {self.skipped} already present; {self.users} user(s), {self.queue_entries} queue entries"
            ),
        ]
        for blob_id in self.damaged:
            out.append(
                f"WARNING: {blob_id} in the backup does not match its checksum (or is missing):"
                " not restored"
            )
        return out


def restore(
    backup_dir: Path,
    data_dir: Path,
    mailbox: str | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    progress = progress or _quiet
    manifest = read_manifest(backup_dir)
    if manifest is None:
        raise BackupError(
            f"{backup_dir}: no {MANIFEST} here: not a todoku backup, or an unfinished one"
        )
    database = manifest.get("database")
    if not isinstance(database, dict):
        raise BackupError(f"{backup_dir / MANIFEST}: names no database")
    saved_db = backup_dir / "todoku.db"
    _require_regular(saved_db)
    if _sha_of(saved_db) != (database.get("size"), database.get("sha256")):
        raise BackupError(f"{saved_db}: does not match the manifest's checksum")
    saved = sqlite3.connect(f"file:{saved_db}?mode=ro", uri=True)
    try:
        _check_saved(backup_dir, saved)  # before anything is written
    except BaseException:
        saved.close()
        raise
    result = RestoreResult(backup_dir)
    files = FileBlobStore(data_dir)
    # The target: the schema comes from the server's own store module, so an empty data
    # directory becomes a complete one.
    from todoku.store.sqlite import SqliteStore

    SqliteStore(data_dir).close()
    live = sqlite3.connect(data_dir / "todoku.db", timeout=60, isolation_level=None)
    live.execute("PRAGMA foreign_keys=ON")
    try:
        where, args = ("WHERE m.mailbox = ?", (mailbox,)) if mailbox else ("", ())
        rows = saved.execute(
            "SELECT m.mailbox, m.uid, m.blob_id, m.size, m.received_at, m.sender, m.subject,"
            " m.deleted_at, b.uidvalidity, b.next_uid, bl.sha256"
            " FROM messages m JOIN mailboxes b ON b.address = m.mailbox"
            f" JOIN blobs bl ON bl.id = m.blob_id {where} ORDER BY m.mailbox, m.uid",
            args,
        ).fetchall()
        present: dict[str, set[str]] = {}
        for done, row in enumerate(rows, 1):
            progress("restoring messages", done, len(rows))
            (
                box,
                uid,
                blob_id,
                size,
                received_at,
                sender,
                subject,
                deleted_at,
                validity,
                next_uid,
                sha,
            ) = row
            if box not in present:
                present[box] = {
                    r[0]
                    for r in live.execute(
                        "SELECT bl.sha256 FROM messages m JOIN blobs bl ON bl.id = m.blob_id"
                        " WHERE m.mailbox = ?",
                        (box,),
                    )
                }
                if (
                    live.execute("SELECT 1 FROM mailboxes WHERE address = ?", (box,)).fetchone()
                    is None
                ):
                    # A mailbox that is gone comes back as it was: same UIDVALIDITY and UIDs.
                    live.execute(
                        "INSERT INTO mailboxes (address, uidvalidity, next_uid) VALUES (?, ?, ?)",
                        (box, validity, next_uid),
                    )
            if sha in present[box]:
                result.skipped += 1
                continue
            if not _copy_in(backup_dir, files, live, blob_id, size, sha):
                result.damaged.append(blob_id)
                continue
            live.execute("BEGIN IMMEDIATE")
            try:
                _insert_blob_row(live, blob_id, size, sha, received_at)
                uid = _uid_for(live, box, uid, validity)
                live.execute(
                    "INSERT INTO messages (mailbox, uid, blob_id, size, received_at, sender, subject,"
                    " deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (box, uid, blob_id, size, received_at, sender, subject, deleted_at),
                )
                live.execute("COMMIT")
            except BaseException:
                live.execute("ROLLBACK")
                raise
            present[box].add(sha)
            result.restored += 1
            result.mailboxes.add(box)

        users = saved.execute(
            "SELECT address, password_hash, created_at FROM users"
            + (" WHERE address = ?" if mailbox else ""),
            args,
        ).fetchall()
        for user in users:
            result.users += live.execute(
                "INSERT OR IGNORE INTO users (address, password_hash, created_at) VALUES (?, ?, ?)",
                user,
            ).rowcount
        if mailbox is None:
            for alias in saved.execute("SELECT source, target FROM aliases").fetchall():
                live.execute("INSERT OR IGNORE INTO aliases (source, target) VALUES (?, ?)", alias)
            result.queue_entries = _restore_queue(backup_dir, saved, live, files, result)
    finally:
        saved.close()
        live.close()
    return result


def _require_regular(path: Path) -> None:
    """A file restore reads must be a regular file, not a link that could point anywhere."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise BackupError(f"{path}: missing from the backup") from None
    if not stat.S_ISREG(info.st_mode):
        raise BackupError(
            f"{path}: not a regular file (a symbolic link?): refusing this backup;"
            " nothing was restored"
        )


def _check_saved(backup_dir: Path, saved: sqlite3.Connection) -> None:
    """Refuse a damaged or crafted backup before anything is written (module docstring): every
    content id has the shape ``blobs.py`` makes, and no directory or message file restore will
    read is a symbolic link. A message file that is simply missing is left to the per-message
    check, which reports it and restores the rest."""
    try:
        ids = [
            row[0]
            for row in saved.execute(
                "SELECT id FROM blobs UNION SELECT blob_id FROM messages"
                " UNION SELECT blob_id FROM queue UNION SELECT id FROM queue"
            )
        ]
    except sqlite3.Error as exc:
        raise BackupError(f"{backup_dir / 'todoku.db'}: unreadable index ({exc})") from None
    for blob_id in ids:
        if not isinstance(blob_id, str) or not is_blob_id(blob_id):
            shown = ascii(blob_id if not isinstance(blob_id, str) else blob_id[:40])
            raise BackupError(
                f"{backup_dir / 'todoku.db'}: content id {shown} is not one todoku makes"
                " (16 hex digits): a damaged or crafted backup; nothing was restored"
            )
    messages = backup_dir / "messages"
    directories = {messages} | {messages / blob_id[:5] for blob_id in ids}
    for directory in sorted(directories):
        try:
            info = directory.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise BackupError(
                f"{directory}: not a directory (a symbolic link?): refusing this backup;"
                " nothing was restored"
            )
    for blob_id in ids:
        path = messages / blob_id[:5] / blob_id
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            raise BackupError(
                f"{path}: not a regular file (a symbolic link?): refusing this backup;"
                " nothing was restored"
            )


def _copy_in(
    backup_dir: Path,
    files: FileBlobStore,
    live: sqlite3.Connection,
    blob_id: str,
    size: int,
    sha256: str,
) -> bool:
    """Put the content file in place (tmp → fsync → rename → fsync dir, as ``blobs.py`` does)
    before any row names it; False if the backup's copy does not match its checksum."""
    final = files.path_of(blob_id)
    if final.is_file() and live.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone():
        return True
    final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
    temp = files.tmp_dir / blob_id
    try:
        copied = _copy_checked(backup_dir / "messages" / blob_id[:5] / blob_id, temp)
    except FileNotFoundError:
        return False  # reported as not restored, like a copy that does not match
    if copied != (size, sha256):
        temp.unlink(missing_ok=True)
        return False
    os.replace(temp, final)
    fsync_dir(final.parent)
    return True


def _insert_blob_row(
    live: sqlite3.Connection, blob_id: str, size: int, sha256: str, created_at: float
) -> None:
    live.execute(
        "INSERT OR IGNORE INTO blobs (id, size, sha256, created_at) VALUES (?, ?, ?, ?)",
        (blob_id, size, sha256, created_at),
    )


def _uid_for(live: sqlite3.Connection, mailbox: str, uid: int, uidvalidity: int) -> int:
    """Keep the backup's UID when it still means this message (same UIDVALIDITY, UID free: UIDs
    are never reused, so it was this message's); otherwise a new one (RFC 1939 §7, RFC 9051 §2.3.1.1)."""
    validity, next_uid = live.execute(
        "SELECT uidvalidity, next_uid FROM mailboxes WHERE address = ?", (mailbox,)
    ).fetchone()
    taken = live.execute(
        "SELECT 1 FROM messages WHERE mailbox = ? AND uid = ?", (mailbox, uid)
    ).fetchone()
    if validity == uidvalidity and not taken:
        live.execute(
            "UPDATE mailboxes SET next_uid = MAX(next_uid, ?) WHERE address = ?", (uid + 1, mailbox)
        )
        return uid
    live.execute("UPDATE mailboxes SET next_uid = next_uid + 1 WHERE address = ?", (mailbox,))
    return int(next_uid)


def _restore_queue(
    backup_dir: Path,
    saved: sqlite3.Connection,
    live: sqlite3.Connection,
    files: FileBlobStore,
    result: RestoreResult,
) -> int:
    restored = 0
    columns = [r[1] for r in saved.execute("PRAGMA table_info(queue)")]
    live_columns = {r[1] for r in live.execute("PRAGMA table_info(queue)")}
    shared = [c for c in columns if c in live_columns]
    rcpt_columns = [r[1] for r in saved.execute("PRAGMA table_info(queue_recipients)")]
    live_rcpt = {r[1] for r in live.execute("PRAGMA table_info(queue_recipients)")}
    rcpt_shared = [c for c in rcpt_columns if c in live_rcpt]
    for entry in saved.execute(f"SELECT {', '.join(shared)} FROM queue").fetchall():
        values = dict(zip(shared, entry, strict=True))
        if live.execute("SELECT 1 FROM queue WHERE id = ?", (values["id"],)).fetchone():
            continue
        blob = saved.execute(
            "SELECT size, sha256, created_at FROM blobs WHERE id = ?", (values["blob_id"],)
        ).fetchone()
        if blob is None or not _copy_in(
            backup_dir, files, live, values["blob_id"], blob[0], blob[1]
        ):
            result.damaged.append(str(values["blob_id"]))
            continue
        live.execute("BEGIN IMMEDIATE")
        try:
            _insert_blob_row(live, values["blob_id"], *blob)
            marks = ", ".join("?" for _ in shared)
            live.execute(f"INSERT INTO queue ({', '.join(shared)}) VALUES ({marks})", entry)
            for recipient in saved.execute(
                f"SELECT {', '.join(rcpt_shared)} FROM queue_recipients WHERE queue_id = ?",
                (values["id"],),
            ).fetchall():
                marks = ", ".join("?" for _ in rcpt_shared)
                live.execute(
                    f"INSERT OR IGNORE INTO queue_recipients ({', '.join(rcpt_shared)}) VALUES ({marks})",
                    recipient,
                )
        except BaseException:
            live.execute("ROLLBACK")
            raise
        live.execute("COMMIT")
        restored += 1
    return restored


__all__ = ["BackupError", "BackupResult", "RestoreResult", "backup", "read_manifest", "restore"]
