"""``todoku fsck``: check the data directory of the SQLite + files store, and repair it.

A tool of the SQLite backend, beside it (issue 14): it reads ``todoku.db`` with plain SQL and the
files under ``messages/`` directly, since what it checks is how that backend keeps the
interfaces' promises. Another backend (PostgreSQL) brings its own checks.

What is checked, in this order:
1. ``PRAGMA integrity_check`` of ``todoku.db`` (damage here cannot be repaired: restore a backup);
2. every ``blobs`` row: its content (a ``contents`` row in the index for small messages, a file
   under ``messages/`` for larger ones) is present, readable, and has the recorded size and
   SHA-256;
3. every mailbox and queue row names content that exists; every ``blobs`` row is used by something;
4. every file under ``messages/`` and every ``contents`` row has a ``blobs`` row (otherwise it is
   an *orphan*);
5. the queue: each entry has recipients and the size of its content;
6. mail counters: each folder's ``next_uid`` is above every UID used or expunged in it, so a UID
   is never handed out twice; each user's MODSEQ is at least every MODSEQ given (RFC 7162);
7. modes: nothing in the data directory is open to group or others (it holds mail and password
   hashes: directories 0700, files 0600, see ``datadir``). Reported once per kind of path (the
   data directory, directories, database files, message files, other files) with a count and an
   example, not once per file; ``--repair`` removes the group and other bits. Symbolic links are
   neither followed nor changed.

Repair never deletes message content. Content kept in the index that must go (damaged,
unreferenced, an orphan it cannot place) is first written out as a file into lost+found. It moves
files it cannot place into
``lost+found/<time>/{damaged,orphans,unreferenced,stray}/``, drops rows whose content is gone or
damaged (listing each lost message: mailbox, UID, sender, subject), re-indexes an orphan into the
INBOX of the mailbox its ``Received: ... for <address>`` field names (unless that mailbox already holds the same
message: the leftover of a crash whose sender got no 250 and sent again), and rebuilds counters.

Online use: fsck reads a consistent snapshot, and each repair runs in one short write transaction,
so it may run next to ``todoku serve``. Orphans younger than ``orphan_grace`` seconds are left
alone, as they may belong to a commit in progress (``blobs.py`` step 3 → 4).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from todoku.store import sqlite_mailboxes as mail
from todoku.store.blobs import is_blob_id
from todoku.store.datadir import DIR_MODE, PRIVATE_UMASK, make_private_dir

ORPHAN_GRACE = 600.0  # seconds: a file this recent may be a commit in progress
DATABASE_FILES = ("todoku.db", "todoku.db-wal", "todoku.db-shm", "todoku.db-journal")
_FOR_ADDRESS = re.compile(rb"\r?\n[ \t]+for <([^<>\s]+)>;")

# Exit statuses, after e2fsck: 0 clean, 1 problems found and all repaired, 4 problems left.
EXIT_CLEAN = 0
EXIT_REPAIRED = 1
EXIT_PROBLEMS = 4

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # missing, unreadable, damaged, orphan, unreferenced, stray, dangling, queue, counter, database, mode
    what: str  # the object, e.g. "message file 6B0A4A47B4780631"
    detail: str  # plain words: what is wrong and what it means
    repaired: str = ""  # what --repair did, empty when not repaired


@dataclass(frozen=True, slots=True)
class LostMessage:
    mailbox: str  # or "queue"
    uid: int
    sender: str
    subject: str
    blob_id: str
    reason: str


@dataclass
class FsckReport:
    data_dir: Path
    files_checked: int = 0
    mailboxes: int = 0
    queue_entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    lost: list[LostMessage] = field(default_factory=list)
    lost_and_found: Path | None = None

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    @property
    def exit_status(self) -> int:
        if not self.problems:
            return EXIT_CLEAN
        return EXIT_PROBLEMS if self.unrepaired else EXIT_REPAIRED

    def lines(self) -> list[str]:
        out = [
            (
                f"data directory {self.data_dir}: checked the content of {self.files_checked}"
                f" messages, {self.mailboxes} mailboxes, {self.queue_entries} queue entries"
            ),
        ]
        if not self.problems:
            out.append("no problems found")
            return out
        out.append(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} found:")
        for problem in self.problems:
            out.append(f"  {problem.kind:<12} {problem.what}: {problem.detail}")
            if problem.repaired:
                out.append(f"  {'':<12} repaired: {problem.repaired}")
        if self.lost:
            out.append(f"{len(self.lost)} message(s) could not be kept in their mailbox:")
            for lost in self.lost:
                out.append(
                    f'  {lost.mailbox} UID {lost.uid} from <{lost.sender}> "{lost.subject}"'
                    f" ({lost.reason}; content {lost.blob_id})"
                )
        if self.lost_and_found is not None:
            out.append(f"files that could not be placed were moved to {self.lost_and_found}")
        left = self.unrepaired
        if left:
            out.append(
                f"{len(left)} problem(s) left;"
                + (
                    " run 'todoku fsck --repair' to fix them"
                    if not any(p.repaired for p in self.problems)
                    else ""
                )
            )
        else:
            out.append("all problems repaired")
        return out


def _sha256_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def after_first_field(data: bytes) -> bytes:
    """The message without its first header field (our Received), to recognise the same message
    stored twice under different trace fields."""
    match = re.match(rb"[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", data)
    return data[match.end() :] if match else data


class _Fsck:
    def __init__(
        self, data_dir: Path, repair: bool, progress: Progress | None, orphan_grace: float
    ) -> None:
        self.data_dir = data_dir
        self.messages_dir = data_dir / "messages"
        self.repair = repair
        self.progress = progress or (lambda phase, done, total: None)
        self.orphan_grace = orphan_grace
        self.report = FsckReport(data_dir)
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        db = data_dir / "todoku.db"
        if repair:
            self.conn = sqlite3.connect(db, timeout=60.0, isolation_level=None)
        else:
            self.conn = sqlite3.connect(
                f"file:{db}?mode=ro", uri=True, timeout=60.0, isolation_level=None
            )
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.contents = self.has_contents()

    def problem(self, kind: str, what: str, detail: str, repaired: str = "") -> None:
        self.report.problems.append(Problem(kind, what, detail, repaired))

    def path_of(self, blob_id: str) -> Path:
        return self.messages_dir / blob_id[:5] / blob_id

    def has_contents(self) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contents'"
            ).fetchone()
            is not None
        )

    def row_content(self, blob_id: str) -> bytes | None:
        """The content of ``blob_id`` when it is kept in the index (small messages)."""
        if not self.contents:
            return None
        row = self.conn.execute("SELECT data FROM contents WHERE id = ?", (blob_id,)).fetchone()
        return bytes(row[0]) if row is not None else None

    def read_content(self, blob_id: str) -> bytes:
        data = self.row_content(blob_id)
        return data if data is not None else self.path_of(blob_id).read_bytes()

    def save_row_content(self, blob_id: str, category: str) -> Path | None:
        """Before the ``blobs`` row goes (its ``contents`` row goes with it): the bytes as a
        file in lost+found. None when the content is not in the index."""
        data = self.row_content(blob_id)
        if data is None:
            return None
        target = self.lost_and_found(category) / blob_id
        with open(target, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return target

    def lost_and_found(self, category: str) -> Path:
        directory = self.data_dir / "lost+found" / self.stamp / category
        make_private_dir(directory)
        self.report.lost_and_found = directory.parent
        return directory

    def move_aside(self, path: Path, category: str) -> Path:
        """Keep the bytes: rename into lost+found (same file system, so nothing is copied)."""
        target = self.lost_and_found(category) / path.name
        os.rename(path, target)
        return target

    # ------------------------------------------------------------------ the run

    def run(self) -> FsckReport:
        try:
            self.check_modes()
            if not self.check_database():
                return self.report
            damaged = self.check_blobs()
            self.check_references(damaged)
            self.check_files()
            self.check_queue()
            self.check_counters()
        finally:
            self.conn.close()
        return self.report

    def path_kind(self, path: str, is_dir: bool) -> str:
        if path == str(self.data_dir):
            return "data directory"
        if is_dir:
            return "directories"
        relative = os.path.relpath(path, self.data_dir)
        if relative in DATABASE_FILES:
            return "database files"
        if relative.split(os.sep, 1)[0] in ("messages", "tmp"):
            return "message files"
        return "other files"

    def check_modes(self) -> None:
        """Step 7 of the module docstring. Runs first: it needs no database, and what it finds
        matters even when the database is damaged."""
        found: dict[str, list[tuple[str, int]]] = {}
        for directory, subdirs, names in os.walk(self.data_dir):  # links are not followed
            for path, is_dir in [(directory, True)] + [
                (os.path.join(directory, n), False) for n in names
            ]:
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue  # removed meanwhile (a running server)
                if stat.S_ISLNK(info.st_mode) or not info.st_mode & PRIVATE_UMASK:
                    continue
                found.setdefault(self.path_kind(path, is_dir), []).append((path, info.st_mode))
            subdirs.sort()
        for kind in (
            "data directory",
            "directories",
            "database files",
            "message files",
            "other files",
        ):
            paths = found.get(kind)
            if not paths:
                continue
            example, mode = paths[0]
            wanted = f"{DIR_MODE:04o}" if kind in ("data directory", "directories") else "0600"
            count = "" if kind == "data directory" else f"{len(paths)} open to other users, e.g. "
            detail = (
                f"{count}{example} (mode {stat.S_IMODE(mode):04o}): other local users can read"
                f" mail or password hashes; should be {wanted}"
            )
            repaired = ""
            if self.repair:
                failed = self.restrict(paths)
                if failed:
                    detail += f"; {len(failed)} could not be changed, e.g. {failed[0]}"
                else:
                    repaired = "group and other permissions removed"
            self.problem("mode", kind, detail, repaired)

    @staticmethod
    def restrict(paths: list[tuple[str, int]]) -> list[str]:
        """Remove the group and other bits, through a descriptor opened without following a
        link, so a path swapped for a link meanwhile changes nothing elsewhere."""
        failed: list[str] = []
        for path, mode in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            except OSError as exc:
                failed.append(f"{path} ({exc.strerror})")
                continue
            try:
                os.fchmod(fd, stat.S_IMODE(mode) & ~PRIVATE_UMASK)
            except OSError as exc:
                failed.append(f"{path} ({exc.strerror})")
            finally:
                os.close(fd)
        return failed

    def check_database(self) -> bool:
        result = [row[0] for row in self.conn.execute("PRAGMA integrity_check").fetchall()]
        if result != ["ok"]:
            self.problem(
                "database",
                "todoku.db",
                f"SQLite reports damage ({'; '.join(result[:3])}); restore the last backup"
                " ('todoku restore') and run fsck again",
            )
            return False
        return True

    def check_blobs(self) -> dict[str, str]:
        """Returns {blob_id: reason} for content that is gone or does not match its row."""
        rows = self.conn.execute("SELECT id, size, sha256 FROM blobs ORDER BY id").fetchall()
        damaged: dict[str, str] = {}
        for done, (blob_id, size, sha256) in enumerate(rows, 1):
            self.progress("checking message files", done, len(rows))
            path = self.path_of(blob_id)
            try:
                held = self.row_content(blob_id)
                if held is not None:
                    actual_size, actual_sha = len(held), hashlib.sha256(held).hexdigest()
                else:
                    actual_size, actual_sha = _sha256_of(path)
            except FileNotFoundError:
                damaged[blob_id] = "missing"
                continue
            except OSError as exc:
                damaged[blob_id] = f"unreadable ({exc.strerror})"
                continue
            self.report.files_checked += 1
            if actual_size != size:
                damaged[blob_id] = f"damaged (size {actual_size}, expected {size})"
            elif actual_sha != sha256:
                damaged[blob_id] = "damaged (checksum does not match)"
        # The server may have purged rows (and then their files) since the snapshot above.
        still = {r[0] for r in self.conn.execute("SELECT id FROM blobs").fetchall()}
        return {blob_id: why for blob_id, why in damaged.items() if blob_id in still}

    def users_of(self, blob_id: str) -> tuple[list[tuple[int, str, int, str, str]], list[str]]:
        messages = self.conn.execute(
            "SELECT id, mailbox, uid, sender, subject FROM messages WHERE blob_id = ?", (blob_id,)
        ).fetchall()
        queued = [
            r[0] for r in self.conn.execute("SELECT id FROM queue WHERE blob_id = ?", (blob_id,))
        ]
        return messages, queued

    def check_references(self, damaged: dict[str, str]) -> None:
        for blob_id, why in sorted(damaged.items()):
            kind = why.split(" ", 1)[0]
            messages, queued = self.users_of(blob_id)
            places = [f"{m[1]} UID {m[2]}" for m in messages] + [f"queue {q}" for q in queued]
            detail = f"{why}; used by {', '.join(places) or 'nothing'}"
            repaired = ""
            if self.repair:
                repaired = self.drop_content(blob_id, messages, queued, why)
            self.problem(kind, f"message file {blob_id}", detail, repaired)

        dangling = self.conn.execute(
            "SELECT 'messages', mailbox || ' UID ' || uid, blob_id FROM messages"
            " WHERE blob_id NOT IN (SELECT id FROM blobs)"
            " UNION ALL SELECT 'queue', id, blob_id FROM queue WHERE blob_id NOT IN (SELECT id FROM blobs)"
        ).fetchall()
        for table, what, blob_id in dangling:
            repaired = ""
            if self.repair:
                path = self.path_of(blob_id)
                held = self.row_content(blob_id)
                if held is not None or path.is_file():
                    if held is not None:
                        size, sha256, when = (
                            len(held),
                            hashlib.sha256(held).hexdigest(),
                            time.time(),
                        )
                    else:
                        (size, sha256), when = _sha256_of(path), path.stat().st_mtime
                    with self.transaction():
                        self.conn.execute(
                            "INSERT OR IGNORE INTO blobs (id, size, sha256, created_at) VALUES (?,?,?,?)",
                            (blob_id, size, sha256, when),
                        )
                    repaired = "its content is intact: recorded its size and checksum again"
                else:
                    messages, queued = self.users_of(blob_id)
                    repaired = self.drop_content(blob_id, messages, queued, "content missing")
            self.problem(
                "dangling",
                f"{table} {what}",
                f"refers to content {blob_id} that has no record",
                repaired,
            )

        unused = self.conn.execute(
            "SELECT id FROM blobs WHERE id NOT IN (SELECT blob_id FROM messages)"
            " AND id NOT IN (SELECT blob_id FROM queue)"
        ).fetchall()
        for (blob_id,) in unused:
            if blob_id in damaged:
                continue
            repaired = ""
            if self.repair:
                saved = self.save_row_content(blob_id, "unreferenced")
                with self.transaction():
                    self.conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
                path = self.path_of(blob_id)
                if saved is not None:
                    repaired = f"record dropped, content kept as {saved}"
                elif path.exists():
                    target = self.move_aside(path, "unreferenced")
                    repaired = f"record dropped, file kept as {target}"
                else:
                    repaired = "record dropped"
            self.problem(
                "unreferenced",
                f"message file {blob_id}",
                "no mailbox and no queue entry uses it (a message whose index rows were lost?)",
                repaired,
            )

    def drop_content(
        self,
        blob_id: str,
        messages: list[tuple[int, str, int, str, str]],
        queued: list[str],
        why: str,
    ) -> str:
        """Drop every row naming ``blob_id`` (its content is gone or damaged); keep any bytes."""
        for _id, mailbox, uid, sender, subject in messages:
            self.report.lost.append(LostMessage(mailbox, uid, sender, subject, blob_id, why))
        for queue_id in queued:
            row = self.conn.execute("SELECT sender FROM queue WHERE id = ?", (queue_id,)).fetchone()
            self.report.lost.append(
                LostMessage("queue", 0, row[0] if row else "", "", blob_id, why)
            )
        saved = self.save_row_content(blob_id, "damaged")
        with self.transaction():
            self.conn.execute("DELETE FROM messages WHERE blob_id = ?", (blob_id,))
            for queue_id in queued:
                self.conn.execute("DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,))
                self.conn.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
            self.conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        path = self.path_of(blob_id)
        count = len(messages) + len(queued)
        action = f"dropped {count} index row{'s' if count != 1 else ''}"
        if saved is not None:
            action += f"; the damaged content is kept as {saved}"
        elif path.exists():
            target = self.move_aside(path, "damaged")
            action += f"; the damaged file is kept as {target}"
        return action

    def check_files(self) -> None:
        known = {r[0] for r in self.conn.execute("SELECT id FROM blobs").fetchall()}
        paths: list[Path] = []
        if self.messages_dir.is_dir():
            for entry in sorted(self.messages_dir.iterdir()):
                paths.extend(sorted(entry.iterdir()) if entry.is_dir() else [entry])
        now = time.time()
        duplicates_of: dict[str, set[str]] = {}
        for done, path in enumerate(paths, 1):
            self.progress("looking for orphan files", done, len(paths))
            name = path.name
            if not path.is_file() or not is_blob_id(name) or path.parent.name != name[:5]:
                repaired = f"moved to {self.move_aside(path, 'stray')}" if self.repair else ""
                self.problem("stray", str(path), "not a message file of this store", repaired)
                continue
            if name in known:
                continue
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue  # purged meanwhile
            if age < self.orphan_grace:
                continue  # may be a commit in progress: look again next time
            self.report.files_checked += 1
            repaired = self.place_orphan(path, duplicates_of) if self.repair else ""
            self.problem(
                "orphan", f"message file {name}", "complete file with no index record", repaired
            )
        if not self.contents:
            return
        rows = self.conn.execute(
            "SELECT id, created_at FROM contents WHERE id NOT IN (SELECT id FROM blobs) ORDER BY id"
        ).fetchall()
        for name, created_at in rows:
            if now - created_at < self.orphan_grace:
                continue  # published, about to be filed (IMAP APPEND): look again next time
            self.report.files_checked += 1
            repaired = ""
            if self.repair:
                path = self.lost_and_found("orphans") / name
                data = self.row_content(name)
                if data is None:
                    continue  # filed or removed meanwhile
                path.write_bytes(data)
                os.utime(path, (created_at, created_at))
                repaired = self.place_orphan(path, duplicates_of, in_index=True)
            self.problem(
                "orphan", f"message content {name}", "kept in the index with no record", repaired
            )

    def place_orphan(
        self, path: Path, duplicates_of: dict[str, set[str]], in_index: bool = False
    ) -> str:
        """File an orphan into the mailbox its Received field names, or keep it in lost+found.
        ``in_index``: the content is a ``contents`` row, and ``path`` a copy of it already in
        lost+found (removed again when the content is filed where it is)."""
        data = path.read_bytes()
        head = data[:8192]
        match = _FOR_ADDRESS.search(head.split(b"\r\n\r\n", 1)[0])
        mailbox = match.group(1).decode("ascii", "replace").lower() if match else None
        known_mailbox = mailbox is not None and (
            self.conn.execute("SELECT 1 FROM mail_users WHERE address = ?", (mailbox,)).fetchone()
            or self.conn.execute("SELECT 1 FROM users WHERE address = ?", (mailbox,)).fetchone()
        )
        if not known_mailbox or mailbox is None:
            target = self.drop_orphan(path) if in_index else self.move_aside(path, "orphans")
            return f"its mailbox is not known; kept as {target}"
        if mailbox not in duplicates_of:
            duplicates_of[mailbox] = set()
            for (blob_id,) in self.conn.execute(
                "SELECT blob_id FROM messages WHERE mailbox = ?", (mailbox,)
            ).fetchall():
                try:
                    other = self.read_content(blob_id)
                except OSError:
                    continue
                duplicates_of[mailbox].add(hashlib.sha256(after_first_field(other)).hexdigest())
        fingerprint = hashlib.sha256(after_first_field(data)).hexdigest()
        if fingerprint in duplicates_of[mailbox]:
            target = self.drop_orphan(path) if in_index else self.move_aside(path, "orphans")
            return f"{mailbox} already has this message (a crash leftover); kept as {target}"
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
        sender = str(headers.get("Return-Path", headers.get("From", ""))).strip().strip("<>")
        subject = str(headers.get("Subject", "")).strip()[:300]
        received_at = path.stat().st_mtime
        with self.transaction():
            self.conn.execute(
                "INSERT INTO blobs (id, size, sha256, created_at) VALUES (?, ?, ?, ?)",
                (path.name, len(data), hashlib.sha256(data).hexdigest(), received_at),
            )
            change = mail.deliver(
                self.conn, mailbox, False, path.name, len(data), received_at, sender, subject
            )
        duplicates_of[mailbox].add(fingerprint)
        if in_index:
            path.unlink()  # the content stays in the index, now with its record
        return f"re-indexed into {mailbox} as UID {change.uids[0]} of INBOX"

    def drop_orphan(self, copy: Path) -> Path:
        """An orphan ``contents`` row that stays unplaced: its copy in lost+found is durable
        (written before), then the row goes."""
        with open(copy, "rb+") as handle:
            os.fsync(handle.fileno())
        with self.transaction():
            self.conn.execute("DELETE FROM contents WHERE id = ?", (copy.name,))
        return copy

    def check_queue(self) -> None:
        rows = self.conn.execute(
            "SELECT q.id, q.size, b.size, (SELECT COUNT(*) FROM queue_recipients r WHERE r.queue_id = q.id)"
            " FROM queue q LEFT JOIN blobs b ON b.id = q.blob_id"
        ).fetchall()
        self.report.queue_entries = len(rows)
        for queue_id, size, blob_size, recipients in rows:
            if recipients == 0:
                repaired = ""
                if self.repair:
                    with self.transaction():
                        self.conn.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
                    repaired = "entry removed (its content stays while anything else uses it)"
                    self.settle_unused(queue_id)
                self.problem(
                    "queue",
                    f"queue entry {queue_id}",
                    "has no recipients: it can never be delivered",
                    repaired,
                )
            elif blob_size is not None and size != blob_size:
                repaired = ""
                if self.repair:
                    with self.transaction():
                        self.conn.execute(
                            "UPDATE queue SET size = ? WHERE id = ?", (blob_size, queue_id)
                        )
                    repaired = f"size set to {blob_size}"
                self.problem(
                    "queue",
                    f"queue entry {queue_id}",
                    f"records size {size}, content has {blob_size}",
                    repaired,
                )
        stray = self.conn.execute(
            "SELECT DISTINCT queue_id FROM queue_recipients WHERE queue_id NOT IN (SELECT id FROM queue)"
        ).fetchall()
        for (queue_id,) in stray:
            repaired = ""
            if self.repair:
                with self.transaction():
                    self.conn.execute(
                        "DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,)
                    )
                repaired = "recipient rows removed"
            self.problem("queue", f"recipients of {queue_id}", "belong to no queue entry", repaired)

    def settle_unused(self, blob_id: str) -> None:
        messages, queued = self.users_of(blob_id)
        if messages or queued:
            return
        self.save_row_content(blob_id, "unreferenced")
        with self.transaction():
            self.conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        path = self.path_of(blob_id)
        if path.exists():
            self.move_aside(path, "unreferenced")

    def check_counters(self) -> None:
        self.report.mailboxes = self.conn.execute("SELECT COUNT(*) FROM mail_users").fetchone()[0]
        rows = self.conn.execute(
            "SELECT f.id, f.owner, f.name, f.next_uid, MAX(COALESCE(m.uid, 0), COALESCE(e.uid, 0))"
            " FROM folders f"
            " LEFT JOIN (SELECT folder_id, MAX(uid) AS uid FROM messages GROUP BY folder_id) m"
            " ON m.folder_id = f.id"
            " LEFT JOIN (SELECT folder_id, MAX(uid) AS uid FROM expunged GROUP BY folder_id) e"
            " ON e.folder_id = f.id"
        ).fetchall()
        for folder_id, owner, name, next_uid, max_uid in rows:
            if max_uid and next_uid <= max_uid:
                repaired = ""
                if self.repair:
                    with self.transaction():
                        self.conn.execute(
                            "UPDATE folders SET next_uid = ? WHERE id = ?", (max_uid + 1, folder_id)
                        )
                    repaired = f"next UID set to {max_uid + 1}"
                self.problem(
                    "counter",
                    f"folder {name} of {owner}",
                    f"next UID {next_uid} is not above the highest UID used ({max_uid}):"
                    " a new message would reuse a UID",
                    repaired,
                )
        modseqs = self.conn.execute(
            "SELECT u.address, u.modseq, MAX(COALESCE(m.modseq, 0), COALESCE(f.modseq, 0))"
            " FROM mail_users u"
            " LEFT JOIN (SELECT mailbox, MAX(modseq) AS modseq FROM messages GROUP BY mailbox) m"
            " ON m.mailbox = u.address"
            " LEFT JOIN (SELECT owner, MAX(highest_modseq) AS modseq FROM folders GROUP BY owner) f"
            " ON f.owner = u.address"
        ).fetchall()
        for address, modseq, highest in modseqs:
            if highest and modseq < highest:
                repaired = ""
                if self.repair:
                    with self.transaction():
                        self.conn.execute(
                            "UPDATE mail_users SET modseq = ? WHERE address = ?", (highest, address)
                        )
                    repaired = f"MODSEQ set to {highest}"
                self.problem(
                    "counter",
                    f"mailbox {address}",
                    f"MODSEQ {modseq} is below one already given ({highest}): IMAP clients"
                    " would miss changes",
                    repaired,
                )
        missing = self.conn.execute(
            "SELECT DISTINCT mailbox FROM messages WHERE mailbox NOT IN"
            " (SELECT address FROM mail_users)"
        ).fetchall()
        for (mailbox,) in missing:
            repaired = ""
            if self.repair:
                with self.transaction():
                    mail.ensure_user(self.conn, mailbox)
                    (highest,) = self.conn.execute(
                        "SELECT MAX(modseq) FROM messages WHERE mailbox = ?", (mailbox,)
                    ).fetchone()
                    self.conn.execute(
                        "UPDATE mail_users SET modseq = MAX(modseq, ?) WHERE address = ?",
                        (highest, mailbox),
                    )
                repaired = "mailbox record rebuilt"
            self.problem(
                "counter", f"mailbox {mailbox}", "has messages but no mailbox record", repaired
            )

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def fsck(
    data_dir: Path,
    repair: bool = False,
    progress: Progress | None = None,
    orphan_grace: float = ORPHAN_GRACE,
) -> FsckReport:
    """Check (and with ``repair`` fix) ``data_dir``; never raises for damage it finds."""
    if not (data_dir / "todoku.db").is_file():
        report = FsckReport(data_dir)
        report.problems.append(
            Problem(
                "database",
                str(data_dir / "todoku.db"),
                "there is no database here: wrong data_dir?",
            )
        )
        return report
    return _Fsck(data_dir, repair, progress, orphan_grace).run()
