"""``todoku backup DEST`` and ``todoku restore SRC``: online, consistent, incremental backups.

Tools of the SQLite backend, beside it (issue 14): a backup is that backend's index and files
(SQLite's online backup API, the message files by path), and restore writes them back the same
way. Another backend (PostgreSQL) is backed up with its own tools.

A backup directory holds::

    todoku.db         a snapshot of the index (SQLite's online backup API: one consistent moment,
                      taken while the server keeps writing), without the content of small
                      messages, which the live index keeps in its ``contents`` table
    messages/B/ID     a copy of the content of every message the snapshot refers to, as a file
                      whichever way the data directory keeps it (file or ``contents`` row), so
                      backups stay incremental and restore reads one kind
    dkim/DOMAIN/      the DKIM signing keys (``state.json`` and the ``SELECTOR.key`` files it names):
                      without them a restored server would make new keys that the published DNS
                      records do not match, and every signed message would fail DKIM
    tls/              the self-signed certificate and key the server made (``tls/cert.pem``,
                      ``tls/key.pem``), when it made them; certificates from elsewhere ([tls]) are
                      the ACME client's to keep
    manifest.json     when, from where, and the size and SHA-256 of every file above

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

Restore puts the DKIM keys and the TLS files back where the data directory has none. Where it
already has keys of its own for a domain (the server was started there first), those are kept,
since they may be the ones in DNS now, and one line names the selectors to publish. ``backup
--verify`` (``verify``) reads a backup the way restore would and lists every file whose size or
SHA-256 differs from the manifest, and what SQLite's integrity_check says of the index.

A backup holds mail, password hashes and private keys: it is written 0700/0600 whatever the umask,
as the data directory is. Restore trusts nothing in the backup to name a path: before it writes anything it
checks that every content id in the backup's index has the exact shape ``blobs.py`` makes (16
upper-case hex digits, so ``messages/<first five>/<id>`` stays inside both directories) and that
the database, ``messages/``, its buckets and the message files it will read are real
directories and regular files, not symbolic links that could point anywhere. The key and
certificate files the manifest lists must have the exact names backup writes
(``dkim/<domain>/<selector>.key``, ``dkim/<domain>/state.json``, ``tls/cert.pem``, ``tls/key.pem``)
and be regular files in real directories too. A backup that
fails either check is refused whole with one line; nothing is restored from it. (Hard links
cannot point outside what their maker could read, and snapshot tools such as rsnapshot use them,
so they are accepted.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from todoku.store import migrations
from todoku.store import sqlite_mailboxes as mail
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
FORMAT = 1  # a manifest without "files" (made before keys were backed up) still restores
KEY_DIR = "dkim"
KEY_STATE = "state.json"
TLS_FILES = ("tls/cert.pem", "tls/key.pem")
# The names backup writes, and the only ones restore accepts from a manifest: an ASCII domain as
# the configuration allows it (no "..", no "/") and a selector of letters and digits.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_SELECTOR_FILE = re.compile(r"[A-Za-z0-9]{1,64}\.key\Z")


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


def _held_content(snapshot: sqlite3.Connection, blob_id: str) -> bytes | None:
    """The content of ``blob_id`` when the index keeps it (``contents``, small messages)."""
    if "contents" not in migrations.tables(snapshot):
        return None
    row = snapshot.execute("SELECT data FROM contents WHERE id = ?", (blob_id,)).fetchone()
    return bytes(row[0]) if row is not None else None


def _write_checked(data: bytes, target: Path) -> tuple[int, str]:
    """``_copy_checked`` for content read from the index."""
    temp = target.with_name(target.name + ".tmp")
    with open_private(temp, exclusive=False) as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temp, target)
    return len(data), hashlib.sha256(data).hexdigest()


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
    dkim_domains: list[str] = field(default_factory=list)
    tls: bool = False
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            (
                f"backup in {self.destination}: {self.messages} messages in {self.files} files;"
                f" copied {self.copied} new files ({self.copied_bytes} bytes),"
                f" {self.reused} already there; {self.seconds:.1f}s"
            ),
        ]
        kept = []
        if self.dkim_domains:
            kept.append(f"DKIM keys of {', '.join(self.dkim_domains)}")
        if self.tls:
            kept.append("the TLS certificate and key")
        if kept:
            out.append(f"included {' and '.join(kept)}")
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
            held = _held_content(target, blob_id)
            try:
                if held is not None:
                    copied_size, copied_sha = _write_checked(held, copy)
                else:
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
        if "contents" in migrations.tables(target):
            # Copied out as files above: the backup's index holds no content (VACUUM gives the
            # pages back, so the snapshot is the size of the index alone).
            with target:
                target.execute("DELETE FROM contents")
            target.execute("VACUUM")
    finally:
        target.close()
    with open(snapshot, "rb+") as handle:
        os.fsync(handle.fileno())
        os.fchmod(handle.fileno(), FILE_MODE)
    os.replace(snapshot, destination / "todoku.db")
    result.files = len(manifest_blobs)
    server_files = _backup_server_files(data_dir, destination, result)

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
            "files": server_files,
            "left_out": result.purged_meanwhile,
        },
    )
    result.seconds = time.monotonic() - started
    return result


def _is_dir(path: Path) -> bool:
    """A real directory (not a symbolic link to one)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _is_file(path: Path) -> bool:
    """A regular file (not a symbolic link to one)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _named_selectors(state: bytes) -> set[str] | None:
    """The selectors a DKIM ``state.json`` names (active, pending, retired); None if unreadable."""
    try:
        data = json.loads(state)
        sets = [data["active"], data.get("pending")] + [r["set"] for r in data.get("retired", [])]
        return {str(name) for entry in sets if entry for name in entry["selectors"]}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _backup_server_files(
    data_dir: Path, destination: Path, result: BackupResult
) -> dict[str, dict[str, object]]:
    """Copy the DKIM keys and the server-made TLS files; returns their manifest entries.

    A domain's ``state.json`` is read first and exactly the key files it names are copied: a
    rotation (new keys written, then the state; retired keys deleted, then the state) that runs
    meanwhile shows up as a named key that is missing, and the domain is read again."""
    entries: dict[str, dict[str, object]] = {}

    def copy(relative: str, data: bytes | None = None) -> None:
        target = destination / relative
        make_private_dir(target.parent)
        if data is None:
            size, sha = _copy_checked(data_dir / relative, target)
        else:
            temp = target.with_name(target.name + ".tmp")
            with open_private(temp, exclusive=False) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
            size, sha = len(data), hashlib.sha256(data).hexdigest()
        entries[relative] = {"size": size, "sha256": sha}

    keys = data_dir / KEY_DIR
    domains = (
        sorted(p.name for p in keys.iterdir() if _DOMAIN.match(p.name)) if _is_dir(keys) else []
    )
    for domain in domains:
        if not _is_dir(keys / domain) or not _is_file(keys / domain / KEY_STATE):
            continue
        for _ in range(5):
            with _open_source(keys / domain / KEY_STATE) as handle:
                state = handle.read(1 << 20)
            selectors = _named_selectors(state)
            if selectors is None or not all(_SELECTOR_FILE.match(f"{n}.key") for n in selectors):
                raise BackupError(f"{keys / domain / KEY_STATE}: unreadable DKIM state")
            names = [f"{KEY_DIR}/{domain}/{selector}.key" for selector in sorted(selectors)]
            try:
                for relative in names:
                    copy(relative)
            except FileNotFoundError:
                for relative in names:  # rotated meanwhile: read the state again
                    entries.pop(relative, None)
                continue
            copy(f"{KEY_DIR}/{domain}/{KEY_STATE}", state)
            break
        else:
            raise BackupError(f"{keys / domain}: DKIM keys kept changing; try the backup again")
        result.dkim_domains.append(domain)
    if all(_is_file(data_dir / name) for name in TLS_FILES):
        for name in TLS_FILES:
            copy(name)
        result.tls = True
    for directory in {destination / name.rpartition("/")[0] for name in entries}:
        fsync_dir(directory)
    return entries


def _sha_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with _open_source(path) as handle:
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
    dkim_restored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # keys or certificates kept, damaged copies
    tls_restored: bool = False

    def lines(self) -> list[str]:
        out = [
            (
                f"restored {self.restored} messages into {len(self.mailboxes)} mailbox(es);"
                f" {self.skipped} already present; {self.users} user(s), {self.queue_entries} queue entries"
            ),
        ]
        if self.dkim_restored:
            out.append(
                f"restored the DKIM keys of {', '.join(self.dkim_restored)}:"
                " the DNS records published for them match again"
            )
        if self.tls_restored:
            out.append("restored the TLS certificate and key the server had made")
        out += self.notes
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
    server_files = _check_files(backup_dir, manifest) if mailbox is None else {}
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
        args: tuple[str, ...] = (mailbox,) if mailbox else ()
        # MODSEQ never goes back (RFC 7162): each address's counter starts above the backup's.
        for owner, modseq in _saved_modseqs(saved, mailbox):
            live.execute("INSERT OR IGNORE INTO mail_users (address) VALUES (?)", (owner,))
            live.execute(
                "UPDATE mail_users SET modseq = MAX(modseq, ?) WHERE address = ?", (modseq, owner)
            )
        # Folders first (also empty ones): each comes back as it was when it is gone, with the
        # UIDs expunged from it (QRESYNC clients learn of those as VANISHED).
        for saved_id, owner, name, role, validity, next_uid, subscribed in _saved_folders(
            saved, mailbox
        ):
            exists = mail.folder_row(live, owner, name) is not None
            folder_id = _folder_for(live, owner, name, role, validity, next_uid, bool(subscribed))
            (now_validity,) = live.execute(
                "SELECT uidvalidity FROM folders WHERE id = ?", (folder_id,)
            ).fetchone()
            if not exists and saved_id is not None and now_validity == validity:
                live.executemany(
                    "INSERT OR IGNORE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)",
                    [
                        (folder_id, uid, modseq)
                        for uid, modseq in saved.execute(
                            "SELECT uid, modseq FROM expunged WHERE folder_id = ?", (saved_id,)
                        )
                    ],
                )
        rows = _saved_messages(saved, mailbox)
        present: dict[tuple[str, str], set[str]] = {}
        for done, row in enumerate(rows, 1):
            progress("restoring messages", done, len(rows))
            (
                box,
                folder,
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
                flags,
                role,
            ) = row
            if (box, folder) not in present:
                folder_id = _folder_for(live, box, folder, role, validity, next_uid, False)
                present[box, folder] = {
                    r[0]
                    for r in live.execute(
                        "SELECT bl.sha256 FROM messages m JOIN blobs bl ON bl.id = m.blob_id"
                        " WHERE m.folder_id = ?",
                        (folder_id,),
                    )
                }
            if sha in present[box, folder]:
                result.skipped += 1
                continue
            if not _copy_in(backup_dir, files, live, blob_id, size, sha):
                result.damaged.append(blob_id)
                continue
            live.execute("BEGIN IMMEDIATE")
            try:
                _insert_blob_row(live, blob_id, size, sha, received_at)
                folder_id = _folder_for(live, box, folder, role, validity, next_uid, False)
                uid = _uid_for(live, folder_id, uid, validity, deleted_at is not None)
                modseq = mail.bump(live, box)
                live.execute(
                    "INSERT INTO messages (mailbox, folder_id, uid, blob_id, size, received_at,"
                    " sender, subject, flags, modseq, deleted_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        box,
                        folder_id,
                        uid,
                        blob_id,
                        size,
                        received_at,
                        sender,
                        subject,
                        flags,
                        modseq,
                        deleted_at,
                    ),
                )
                live.execute(
                    "UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, folder_id)
                )
                live.execute("COMMIT")
            except BaseException:
                live.execute("ROLLBACK")
                raise
            present[box, folder].add(sha)
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
    if server_files:
        _restore_server_files(backup_dir, data_dir, server_files, result)
    return result


def _check_files(backup_dir: Path, manifest: dict[str, object]) -> dict[str, tuple[int, str]]:
    """The key and certificate files the manifest lists, refused whole (nothing written yet) when
    one has a name backup does not write or is not a regular file in real directories."""
    listed = manifest.get("files", {})
    if not isinstance(listed, dict):
        raise BackupError(f"{backup_dir / MANIFEST}: 'files' is not a table: a damaged backup")
    out: dict[str, tuple[int, str]] = {}
    for relative, entry in listed.items():
        parts = str(relative).split("/")
        named = (
            len(parts) == 3
            and parts[0] == KEY_DIR
            and bool(_DOMAIN.match(parts[1]))
            and (parts[2] == KEY_STATE or bool(_SELECTOR_FILE.match(parts[2])))
        ) or relative in TLS_FILES
        if not named or not isinstance(entry, dict):
            raise BackupError(
                f"{backup_dir / MANIFEST}: lists {str(relative)[:80]!a}, not a file todoku"
                " backs up: a damaged or crafted backup; nothing was restored"
            )
        path = backup_dir / relative
        for directory in [backup_dir / "/".join(parts[:n]) for n in range(1, len(parts))]:
            if (directory.exists() or directory.is_symlink()) and not _is_dir(directory):
                raise BackupError(
                    f"{directory}: not a directory (a symbolic link?): refusing this backup;"
                    " nothing was restored"
                )
        if path.exists() or path.is_symlink():
            _require_regular(path)
        out[relative] = (entry.get("size"), entry.get("sha256"))  # type: ignore[assignment]
    return out


def _matches(path: Path, expected: tuple[int, str]) -> bool:
    try:
        return _sha_of(path) == expected
    except OSError:
        return False


def _install(source: Path, target: Path, expected: tuple[int, str]) -> bool:
    """Copy one key or certificate file in (0600, through a temporary name); False (and nothing
    left behind) when the backup's copy does not match its checksum."""
    make_private_dir(target.parent)
    temp = target.with_name(target.name + ".restore")
    try:
        copied = _copy_checked(source, temp)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    if copied != expected:
        temp.unlink()
        return False
    os.replace(temp, target)
    return True


def _active(state: Path) -> dict[str, bytes] | None:
    """The active selectors of a DKIM state file and their key files' bytes; None if unreadable."""
    try:
        data = json.loads(state.read_bytes())
        names = [str(n) for n in data["active"]["selectors"]]
        return {n: (state.parent / f"{n}.key").read_bytes() for n in names}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _restore_server_files(
    backup_dir: Path, data_dir: Path, listed: dict[str, tuple[int, str]], result: RestoreResult
) -> None:
    """DKIM keys and TLS files back where the data directory has none; where it has its own,
    they are kept (they may be what DNS publishes now) and a line says what to publish."""
    by_domain: dict[str, list[str]] = {}
    for relative in listed:
        if relative.startswith(KEY_DIR + "/"):
            by_domain.setdefault(relative.split("/")[1], []).append(relative)
    for domain, names in sorted(by_domain.items()):
        state = f"{KEY_DIR}/{domain}/{KEY_STATE}"
        damaged = [n for n in names if not _matches(backup_dir / n, listed[n])]
        if state not in names or damaged:
            result.notes.append(
                f"WARNING: the DKIM keys of {domain} in the backup are damaged or incomplete"
                f" ({', '.join(damaged) or state + ' missing'}): not restored"
            )
            continue
        live_state = data_dir / state
        if live_state.exists() or live_state.is_symlink():
            theirs = _active(backup_dir / state)
            ours = _active(live_state)
            if ours is None or theirs != ours:
                shown = ", ".join(sorted(ours)) if ours else "unreadable"
                if ours and theirs and sorted(ours) == sorted(theirs):
                    detail = f"selectors {shown}, the same names as the backup's but other keys"
                else:
                    saved = ", ".join(sorted(theirs)) if theirs else "unreadable"
                    detail = f"selectors {shown}; the backup's are {saved}"
                result.notes.append(
                    f"dkim: {domain} already has its own keys here ({detail}): kept them;"
                    f" publish the records 'todoku dns-records {domain}' prints"
                )
            continue
        make_private_dir(data_dir / KEY_DIR / domain)
        # The key files first, the state that names them last: a server loading keys meanwhile
        # sees either no keys yet or a complete set.
        for relative in sorted(names, key=lambda n: n == state):
            if not _install(backup_dir / relative, data_dir / relative, listed[relative]):
                raise BackupError(f"{backup_dir / relative}: changed while being restored")
        fsync_dir(data_dir / KEY_DIR / domain)
        result.dkim_restored.append(domain)
    if all(name in listed for name in TLS_FILES):
        present = [name for name in TLS_FILES if (data_dir / name).exists()]
        if not present:
            if all(_matches(backup_dir / n, listed[n]) for n in TLS_FILES):
                for name in TLS_FILES:
                    if not _install(backup_dir / name, data_dir / name, listed[name]):
                        raise BackupError(f"{backup_dir / name}: changed while being restored")
                fsync_dir(data_dir / "tls")
                result.tls_restored = True
            else:
                result.notes.append(
                    "WARNING: the TLS certificate or key in the backup does not match its checksum:"
                    " not restored (the server makes a new self-signed one)"
                )
        elif not all(_matches(data_dir / n, listed[n]) for n in TLS_FILES):
            result.notes.append(
                f"tls: {data_dir / 'tls'} already has a certificate and key, kept;"
                " the backup's were not restored"
            )


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
        _refuse_other_kind(directory, stat.S_ISDIR, "directory")
    for blob_id in ids:
        _refuse_other_kind(messages / blob_id[:5] / blob_id, stat.S_ISREG, "regular file")


def _refuse_other_kind(path: Path, is_kind: Callable[[int], bool], kind: str) -> None:
    """Refuse the backup when ``path`` exists but is not a ``kind`` (``is_kind`` tests the
    mode ``lstat`` gives, so a symbolic link is refused too). A missing path passes."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not is_kind(info.st_mode):
        raise BackupError(
            f"{path}: not a {kind} (a symbolic link?): refusing this backup; nothing was restored"
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
    known = live.execute("SELECT size, sha256 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
    if known and (known[0], known[1]) != (size, sha256):
        # Not the content this id stands for here: a crafted backup could otherwise name another
        # mailbox's message (its id is in every Received field) and have it linked into a
        # mailbox of its choosing, or replace its file.
        return False
    if known and (
        final.is_file()
        or live.execute("SELECT 1 FROM contents WHERE id = ?", (blob_id,)).fetchone()
    ):
        return True  # here already, as a file or in the index
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


def _saved_modseqs(saved: sqlite3.Connection, mailbox: str | None) -> list[Any]:
    if "mail_users" not in migrations.tables(saved):
        return []
    where, args = (" WHERE address = ?", (mailbox,)) if mailbox else ("", ())
    return saved.execute(f"SELECT address, modseq FROM mail_users{where}", args).fetchall()


def _saved_folders(saved: sqlite3.Connection, mailbox: str | None) -> list[Any]:
    """(id, owner, name, special use, UIDVALIDITY, next UID, subscribed) of the backup's
    folders; a backup made before folders (schema < 3) has one INBOX per address (no id)."""
    where, args = (" AND owner = ?", (mailbox,)) if mailbox else ("", ())
    if "folders" in migrations.tables(saved):
        return saved.execute(
            "SELECT id, owner, name, special_use, uidvalidity, next_uid, subscribed FROM folders"
            f" WHERE deleted_at IS NULL{where} ORDER BY owner, name",
            args,
        ).fetchall()
    where = " WHERE address = ?" if mailbox else ""
    return saved.execute(
        "SELECT NULL, address, 'INBOX', NULL, uidvalidity, next_uid, 1 FROM mailboxes"
        f"{where} ORDER BY address",
        args,
    ).fetchall()


def _saved_messages(saved: sqlite3.Connection, mailbox: str | None) -> list[Any]:
    """The backup's messages (deleted ones too) with their folder, UIDVALIDITY and flags."""
    where, args = ("WHERE m.mailbox = ?", (mailbox,)) if mailbox else ("", ())
    if "folders" in migrations.tables(saved):
        return saved.execute(
            "SELECT m.mailbox, f.name, m.uid, m.blob_id, m.size, m.received_at, m.sender,"
            " m.subject, m.deleted_at, f.uidvalidity, f.next_uid, bl.sha256, m.flags,"
            " f.special_use FROM messages m JOIN folders f ON f.id = m.folder_id"
            f" JOIN blobs bl ON bl.id = m.blob_id {where} ORDER BY m.mailbox, f.name, m.uid",
            args,
        ).fetchall()
    return saved.execute(
        "SELECT m.mailbox, 'INBOX', m.uid, m.blob_id, m.size, m.received_at, m.sender,"
        " m.subject, m.deleted_at, b.uidvalidity, b.next_uid, bl.sha256, '', NULL"
        " FROM messages m JOIN mailboxes b ON b.address = m.mailbox"
        f" JOIN blobs bl ON bl.id = m.blob_id {where} ORDER BY m.mailbox, m.uid",
        args,
    ).fetchall()


def _folder_for(
    live: sqlite3.Connection,
    owner: str,
    name: str,
    role: str | None,
    uidvalidity: int,
    next_uid: int,
    subscribed: bool,
) -> int:
    """The live folder ``name`` of ``owner``; one that is gone comes back as it was (same
    UIDVALIDITY, so the backup's UIDs keep their meaning for clients)."""
    live.execute("INSERT OR IGNORE INTO mail_users (address) VALUES (?)", (owner,))
    row = mail.folder_row(live, owner, name)
    if row is not None:
        return int(row[0])
    taken = live.execute(
        "SELECT 1 FROM folders WHERE owner = ? AND uidvalidity = ?", (owner, uidvalidity)
    ).fetchone()
    if taken is not None:  # that UIDVALIDITY now names another folder: a new one
        return mail.new_folder(
            live, owner, name, None, subscribed, mail.current_modseq(live, owner)
        )
    (folder_id,) = live.execute(
        "INSERT INTO folders (owner, name, special_use, uidvalidity, next_uid, highest_modseq,"
        " subscribed) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (owner, name, role, uidvalidity, next_uid, mail.current_modseq(live, owner), subscribed),
    ).fetchone()
    live.execute(
        "UPDATE mail_users SET last_uidvalidity = MAX(last_uidvalidity, ?) WHERE address = ?",
        (uidvalidity, owner),
    )
    return int(folder_id)


def _uid_for(
    live: sqlite3.Connection, folder_id: int, uid: int, uidvalidity: int, deleted: bool
) -> int:
    """Keep the backup's UID when it still means this message (same UIDVALIDITY, UID never used
    here: UIDs are never reused, so it was this message's); otherwise a new one (RFC 1939 §7,
    RFC 9051 §2.3.1.1). An expunged UID is used up for live mail, but it is the UID a deleted
    (recoverable) message was expunged under."""
    (validity,) = live.execute(
        "SELECT uidvalidity FROM folders WHERE id = ?", (folder_id,)
    ).fetchone()
    taken = live.execute(
        "SELECT 1 FROM messages WHERE folder_id = ? AND uid = ?", (folder_id, uid)
    ).fetchone() or (
        not deleted
        and live.execute(
            "SELECT 1 FROM expunged WHERE folder_id = ? AND uid = ?", (folder_id, uid)
        ).fetchone()
    )
    if validity == uidvalidity and not taken:
        live.execute(
            "UPDATE folders SET next_uid = MAX(next_uid, ?) WHERE id = ?", (uid + 1, folder_id)
        )
        return uid
    (new_uid,) = live.execute(
        "UPDATE folders SET next_uid = next_uid + 1 WHERE id = ? RETURNING next_uid - 1",
        (folder_id,),
    ).fetchone()
    return int(new_uid)


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


# ---------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    destination: Path
    message_files: int = 0
    other_files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        if self.problems:
            return self.problems
        verified = (
            f"backup in {self.destination} verified: the index passes integrity_check;"
            f" {self.message_files} message files and {self.other_files} key and certificate"
            " files match the manifest"
        )
        return [verified]


MAX_INTEGRITY_LINES = 20  # what integrity_check may say about a badly damaged index


def verify(destination: Path, progress: Progress | None = None) -> VerifyResult:
    """Check a backup against its manifest: every file's size and SHA-256, and the index with
    SQLite's integrity_check. Reads only; one line per problem (``VerifyResult.problems``)."""
    progress = progress or _quiet
    result = VerifyResult(destination)
    try:
        manifest = read_manifest(destination)
    except BackupError as exc:
        result.problems.append(str(exc))
        return result
    if manifest is None:
        result.problems.append(
            f"{destination}: no {MANIFEST} here: not a todoku backup, or an unfinished one"
        )
        return result

    def check(path: Path, entry: object) -> None:
        if not isinstance(entry, dict):
            result.problems.append(f"{path}: the manifest's entry for it is damaged")
            return
        try:
            info = path.lstat()
        except FileNotFoundError:
            result.problems.append(f"{path}: missing")
            return
        if not stat.S_ISREG(info.st_mode):
            result.problems.append(f"{path}: not a regular file (a symbolic link?)")
            return
        if info.st_size != entry.get("size"):
            result.problems.append(
                f"{path}: {info.st_size} bytes, the manifest says {entry.get('size')}"
            )
            return
        try:
            _, sha = _sha_of(path)
        except OSError as exc:
            result.problems.append(f"{path}: unreadable ({exc.strerror})")
            return
        if sha != entry.get("sha256"):
            result.problems.append(
                f"{path}: SHA-256 differs from the manifest's (changed or damaged)"
            )

    database = destination / "todoku.db"
    check(database, manifest.get("database"))
    blobs = manifest.get("blobs", {})
    listed = manifest.get("files", {})
    if not isinstance(blobs, dict) or not isinstance(listed, dict):
        result.problems.append(f"{destination / MANIFEST}: 'blobs' or 'files' is not a table")
        return result
    for done, (blob_id, entry) in enumerate(sorted(blobs.items()), 1):
        progress("verifying message files", done, len(blobs))
        if not is_blob_id(blob_id):
            result.problems.append(
                f"{destination / MANIFEST}: content id {blob_id[:40]!a} is not one todoku makes"
            )
            continue
        check(destination / "messages" / blob_id[:5] / blob_id, entry)
        result.message_files += 1
    for relative, entry in sorted(listed.items()):
        parts = relative.split("/")
        if ".." in parts or relative.startswith("/"):
            result.problems.append(f"{destination / MANIFEST}: lists {relative[:80]!a}")
            continue
        check(destination / relative, entry)
        result.other_files += 1
    if _is_file(database):
        result.problems += _check_index(database, set(blobs))
    return result


def _check_index(database: Path, listed: set[str]) -> list[str]:
    """integrity_check's findings, and content the index names that the manifest does not list."""
    problems = []
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            if found != ["ok"]:
                problems += [
                    f"{database}: integrity_check: {line}" for line in found[:MAX_INTEGRITY_LINES]
                ]
                return problems
            named = {
                r[0]
                for r in conn.execute(
                    "SELECT blob_id FROM messages UNION SELECT blob_id FROM queue"
                )
            }
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [f"{database}: not a readable SQLite database ({exc})"]
    for blob_id in sorted(str(b) for b in named - listed):
        problems.append(
            f"{database}: names message file {blob_id[:40]!a}, which the manifest does not list"
        )
    return problems


__all__ = [
    "BackupError",
    "BackupResult",
    "RestoreResult",
    "VerifyResult",
    "backup",
    "read_manifest",
    "restore",
    "verify",
]
