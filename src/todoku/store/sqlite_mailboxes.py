"""``Mailboxes`` on the SQLite index (tables of migration 3: ``mail_users``, ``folders``,
``messages`` with ``folder_id``/``flags``/``modseq``, ``expunged``).

Every call runs its SQL in a small pool of worker threads (each with its own connection, as
the store's other threads), never on the event loop. A write is one short ``BEGIN IMMEDIATE``
transaction, so SQLite serialises it with the ingest writer thread's group commits and the
CLI's writes; its changes are announced (``ChangeHub``) only after the commit.

The module-level functions taking a connection are the SQL of each step, shared with
``SqliteStore`` (delivery into INBOX or Junk, POP3's maildrop and deletions, undelete, purge).
Flags are kept as one space-separated text of sorted flags (a keyword has no spaces).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from todoku.store.mailboxes import (
    DEFAULT_FOLDERS,
    DELETED,
    INBOX,
    Appended,
    BlobRef,
    Change,
    ChangeHub,
    ChangeKind,
    Copied,
    DeletedMessage,
    FlagsStored,
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderNotFound,
    InboxProtected,
    Mailboxes,
    MessageInfo,
    SpecialUse,
    StoreMode,
    Usage,
    apply_flags,
    is_inside,
    normalize_flags,
    normalize_name,
    parents_of,
)

if TYPE_CHECKING:
    import sqlite3

    from todoku.store.sqlite import SqliteStore

T = TypeVar("T")

# Reads of different sessions overlap (one connection per thread, WAL); writes queue on SQLite's
# lock. Four threads keep a few slow folder listings from holding up everyone's STORE.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="todoku-mailboxes")

Changes = list[tuple[str, Change]]  # (user, change), announced after the commit


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(flags))


def flags_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ------------------------------------------------------------------------ SQL steps (shared)

_FOLDER_COLUMNS = "id, name, special_use, uidvalidity, next_uid, highest_modseq, subscribed"


def ensure_user(conn: sqlite3.Connection, user: str) -> int:
    """The user's record and INBOX exist (made on first use); returns INBOX's folder id."""
    conn.execute("INSERT OR IGNORE INTO mail_users (address) VALUES (?)", (user,))
    row = folder_row(conn, user, INBOX)
    if row is not None:
        return int(row[0])
    modseq = current_modseq(conn, user)
    return new_folder(conn, user, INBOX, None, True, modseq)


def current_modseq(conn: sqlite3.Connection, user: str) -> int:
    row = conn.execute("SELECT modseq FROM mail_users WHERE address = ?", (user,)).fetchone()
    return int(row[0]) if row else 1


def bump(conn: sqlite3.Connection, user: str) -> int:
    """The next MODSEQ of this user, taken for one operation."""
    row = conn.execute(
        "UPDATE mail_users SET modseq = modseq + 1 WHERE address = ? RETURNING modseq", (user,)
    ).fetchone()
    return int(row[0])


def folder_row(conn: sqlite3.Connection, user: str, name: str) -> Any:
    return conn.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE owner = ? AND name = ?"
        " AND deleted_at IS NULL",
        (user, name),
    ).fetchone()


def new_folder(
    conn: sqlite3.Connection,
    user: str,
    name: str,
    special_use: SpecialUse | None,
    subscribed: bool,
    modseq: int,
) -> int:
    """A folder with a UIDVALIDITY this user's folders never had (time-based, increasing)."""
    (uidvalidity,) = conn.execute(
        "UPDATE mail_users SET last_uidvalidity = MAX(last_uidvalidity + 1, ?)"
        " WHERE address = ? RETURNING last_uidvalidity",
        (int(time.time()), user),
    ).fetchone()
    (folder_id,) = conn.execute(
        "INSERT INTO folders (owner, name, special_use, uidvalidity, next_uid, highest_modseq,"
        " subscribed) VALUES (?, ?, ?, ?, 1, ?, ?) RETURNING id",
        (user, name, special_use.value if special_use else None, uidvalidity, modseq, subscribed),
    ).fetchone()
    return int(folder_id)


def take_uid(conn: sqlite3.Connection, folder_id: int, modseq: int) -> int:
    (uid,) = conn.execute(
        "UPDATE folders SET next_uid = next_uid + 1, highest_modseq = ? WHERE id = ?"
        " RETURNING next_uid - 1",
        (modseq, folder_id),
    ).fetchone()
    return int(uid)


def junk_folder(conn: sqlite3.Connection, user: str) -> tuple[int, str]:
    """Where quarantined mail goes: the folder with the \\Junk role, else one named Junk
    (made, with the role, when the user has neither)."""
    row = conn.execute(
        "SELECT id, name FROM folders WHERE owner = ? AND special_use = ? AND deleted_at IS NULL"
        " ORDER BY id LIMIT 1",
        (user, SpecialUse.JUNK.value),
    ).fetchone()
    if row is None:
        row = folder_row(conn, user, "Junk")
    if row is not None:
        return int(row[0]), str(row[1])
    return new_folder(conn, user, "Junk", SpecialUse.JUNK, True, current_modseq(conn, user)), "Junk"


def file_message(
    conn: sqlite3.Connection,
    user: str,
    folder: str,
    blob_id: str,
    size: int,
    received_at: float,
    sender: str,
    subject: str,
    flags: frozenset[str] = frozenset(),
) -> Change:
    """File stored content into a folder of the user (made when missing: an import names it);
    the blob row exists."""
    ensure_user(conn, user)
    row = folder_row(conn, user, folder)
    if row is None:
        for name in [*parents_of(folder), folder]:
            if folder_row(conn, user, name) is None:
                new_folder(conn, user, name, None, True, current_modseq(conn, user))
        row = folder_row(conn, user, folder)
    modseq = bump(conn, user)
    uid = take_uid(conn, int(row[0]), modseq)
    conn.execute(
        "INSERT INTO messages (mailbox, folder_id, uid, blob_id, size, received_at, sender,"
        " subject, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (user, row[0], uid, blob_id, size, received_at, sender, subject, flags_text(flags), modseq),
    )
    return Change(ChangeKind.EXISTS, str(row[1]), modseq, (uid,))


def deliver(
    conn: sqlite3.Connection,
    user: str,
    junk: bool,
    blob_id: str,
    size: int,
    received_at: float,
    sender: str,
    subject: str,
) -> Change:
    """File one delivered message into the user's INBOX (or Junk); the blob row exists.

    The SMTP accept path, inside the group commit: for a known user three statements and the
    insert (a new user's record and INBOX are made on the first delivery)."""
    row = conn.execute(
        "UPDATE mail_users SET modseq = modseq + 1 WHERE address = ? RETURNING modseq", (user,)
    ).fetchone()
    if row is None:
        ensure_user(conn, user)
        modseq = bump(conn, user)
    else:
        modseq = int(row[0])
    name = INBOX
    if junk:
        folder_id, name = junk_folder(conn, user)
        uid = take_uid(conn, folder_id, modseq)
    else:
        taken = conn.execute(
            "UPDATE folders SET next_uid = next_uid + 1, highest_modseq = ?"
            " WHERE owner = ? AND name = ? AND deleted_at IS NULL RETURNING id, next_uid - 1",
            (modseq, user, INBOX),
        ).fetchone()
        if taken is None:  # INBOX renamed away just now (it is made again at once)
            folder_id = ensure_user(conn, user)
            uid = take_uid(conn, folder_id, modseq)
        else:
            folder_id, uid = int(taken[0]), int(taken[1])
    conn.execute(
        "INSERT INTO messages (mailbox, folder_id, uid, blob_id, size, received_at, sender,"
        " subject, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?)",
        (user, folder_id, uid, blob_id, size, received_at, sender, subject, modseq),
    )
    return Change(ChangeKind.EXISTS, name, modseq, (uid,))


def expunge_rows(
    conn: sqlite3.Connection, user: str, folder_id: int, name: str, uids: list[int], now: float
) -> list[Change]:
    """Expunge these live messages: recoverable (deleted_at), their UIDs kept as tombstones."""
    if not uids:
        return []
    modseq = bump(conn, user)
    conn.executemany(
        "UPDATE messages SET deleted_at = ?, modseq = ? WHERE folder_id = ? AND uid = ?",
        [(now, modseq, folder_id, uid) for uid in uids],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)",
        [(folder_id, uid, modseq) for uid in uids],
    )
    conn.execute("UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, folder_id))
    return [Change(ChangeKind.EXPUNGE, name, modseq, tuple(uids))]


def remove_by_id(
    conn: sqlite3.Connection, user: str, message_ids: list[int], now: float
) -> tuple[int, Changes]:
    """POP3's deletions (message ids of its INBOX maildrop): a recoverable expunge. A message
    an IMAP session moved to another folder meanwhile keeps its id there and is left alone."""
    by_folder: dict[tuple[int, str], list[int]] = {}
    for message_id in message_ids:
        row = conn.execute(
            "SELECT m.folder_id, f.name, m.uid FROM messages m JOIN folders f"
            " ON f.id = m.folder_id WHERE m.id = ? AND m.mailbox = ? AND m.deleted_at IS NULL"
            " AND f.name = ? AND f.deleted_at IS NULL",
            (message_id, user, INBOX),
        ).fetchone()
        if row is not None:
            by_folder.setdefault((int(row[0]), str(row[1])), []).append(int(row[2]))
    changes: Changes = []
    count = 0
    for (folder_id, name), uids in by_folder.items():
        uids.sort()
        count += len(uids)
        changes += [(user, c) for c in expunge_rows(conn, user, folder_id, name, uids, now)]
    return count, changes


def undelete_rows(
    conn: sqlite3.Connection, user: str, ids: Collection[int] | None, since: float | None
) -> tuple[int, Changes]:
    """Bring deleted messages back into their folders (a live one of the same name when theirs
    was deleted) under new UIDs, so IMAP and POP3 clients fetch them again."""
    query = (
        "SELECT m.id, m.folder_id, f.name, f.deleted_at FROM messages m JOIN folders f"
        " ON f.id = m.folder_id WHERE m.mailbox = ? AND m.deleted_at IS NOT NULL"
    )
    args: list[Any] = [user]
    if since is not None:
        query += " AND m.deleted_at >= ?"
        args.append(since)
    rows = conn.execute(query + " ORDER BY m.id", args).fetchall()
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r[0] in wanted]
    if not rows:
        return 0, []
    ensure_user(conn, user)
    modseq = bump(conn, user)
    targets: dict[int, tuple[int, str]] = {}
    new_uids: dict[str, list[int]] = {}
    for message_id, folder_id, name, folder_deleted in rows:
        if folder_id not in targets:
            if folder_deleted is None:
                targets[folder_id] = (folder_id, name)
            else:
                live = folder_row(conn, user, name)
                target_id = (
                    int(live[0]) if live else new_folder(conn, user, name, None, False, modseq)
                )
                targets[folder_id] = (target_id, name)
        target_id, target_name = targets[folder_id]
        uid = take_uid(conn, target_id, modseq)
        conn.execute(
            "UPDATE messages SET deleted_at = NULL, folder_id = ?, uid = ?, modseq = ?"
            " WHERE id = ?",
            (target_id, uid, modseq, message_id),
        )
        new_uids.setdefault(target_name, []).append(uid)
    changes = [
        (user, Change(ChangeKind.EXISTS, name, modseq, tuple(uids)))
        for name, uids in new_uids.items()
    ]
    return len(rows), changes


def purge_rows(conn: sqlite3.Connection, older_than: float) -> list[str]:
    """Forget mail deleted before ``older_than`` and deleted folders left empty; returns the
    blob ids that were referenced (the caller removes those nothing refers to any more)."""
    blob_ids = [
        str(row[0])
        for row in conn.execute(
            "DELETE FROM messages WHERE deleted_at IS NOT NULL AND deleted_at < ?"
            " RETURNING blob_id",
            (older_than,),
        ).fetchall()
    ]
    gone = [
        int(row[0])
        for row in conn.execute(
            "DELETE FROM folders WHERE deleted_at IS NOT NULL"
            " AND id NOT IN (SELECT folder_id FROM messages) RETURNING id"
        ).fetchall()
    ]
    conn.executemany("DELETE FROM expunged WHERE folder_id = ?", [(i,) for i in gone])
    return blob_ids


# ------------------------------------------------------------------------ the interface


class SqliteMailboxes:
    """``Mailboxes`` over a ``SqliteStore`` (its connections, its change hub, its blobs)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.hub: ChangeHub = store.changes
        self._ready: set[str] = set()  # users whose record and INBOX are known to exist

    # ------------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_POOL, functools.partial(fn, *args))

    def _read(self, fn: Callable[..., T], user: str, *args: Any) -> T:
        key = user.lower()
        if key not in self._ready:
            self._write(lambda conn, changes: ensure_user(conn, key), key)
            self._ready.add(key)
        conn = self.store._conn()
        conn.execute("BEGIN")  # one snapshot for the statements of this read
        try:
            return fn(conn, key, *args)
        finally:
            conn.execute("COMMIT")

    def _write(self, fn: Callable[..., T], user: str, *args: Any) -> T:
        key = user.lower()
        changes: Changes = []
        with self.store._write() as conn:
            if key not in self._ready:
                ensure_user(conn, key)
            result = fn(conn, changes, *args)
        self._ready.add(key)
        self.store.announce(changes)
        return result

    async def _reading(self, fn: Callable[..., T], user: str, *args: Any) -> T:
        return await self._run(self._read, fn, user, *args)

    async def _writing(self, fn: Callable[..., T], user: str, *args: Any) -> T:
        return await self._run(self._write, fn, user, *args)

    @staticmethod
    def _folder(conn: sqlite3.Connection, user: str, name: str) -> Any:
        row = folder_row(conn, user, normalize_name(name))
        if row is None:
            raise FolderNotFound(f"no folder {name}")
        return row

    # ------------------------------------------------------------------ folders

    async def ensure_defaults(self, user: str) -> None:
        key = user.lower()

        def run(conn: sqlite3.Connection, changes: Changes) -> None:
            (done,) = conn.execute(
                "SELECT defaults_done FROM mail_users WHERE address = ?", (key,)
            ).fetchone()
            if done:
                return
            for name, role in DEFAULT_FOLDERS:
                row = folder_row(conn, key, name)
                if row is None:
                    modseq = bump(conn, key)
                    new_folder(conn, key, name, role, True, modseq)
                    changes.append((key, Change(ChangeKind.FOLDER_CREATED, name, modseq)))
                elif row[2] is None and role is not None:
                    conn.execute(
                        "UPDATE folders SET special_use = ? WHERE id = ?", (role.value, row[0])
                    )
            conn.execute("UPDATE mail_users SET defaults_done = 1 WHERE address = ?", (key,))

        await self._writing(run, key)

    @staticmethod
    def _status(
        conn: sqlite3.Connection, user: str, where: str, args: tuple[Any, ...]
    ) -> list[Folder]:
        rows = conn.execute(
            "SELECT f.name, f.special_use, f.uidvalidity, f.next_uid, f.highest_modseq,"
            " f.subscribed, COUNT(m.id),"
            " COALESCE(SUM(instr(' ' || m.flags || ' ', ' \\Seen ') = 0), 0),"
            " COALESCE(SUM(m.size), 0)"
            " FROM folders f LEFT JOIN messages m ON m.folder_id = f.id AND m.deleted_at IS NULL"
            f" WHERE f.owner = ? AND f.deleted_at IS NULL {where} GROUP BY f.id ORDER BY f.name",
            (user, *args),
        ).fetchall()
        return [
            Folder(
                name=r[0],
                special_use=SpecialUse(r[1]) if r[1] else None,
                uidvalidity=r[2],
                uidnext=r[3],
                highest_modseq=r[4],
                subscribed=bool(r[5]),
                messages=r[6],
                unseen=r[7],
                size=r[8],
            )
            for r in rows
        ]

    async def folders(self, user: str) -> list[Folder]:
        return await self._reading(lambda conn, key: self._status(conn, key, "", ()), user)

    async def folder(self, user: str, name: str) -> Folder:
        wanted = normalize_name(name)

        def run(conn: sqlite3.Connection, key: str) -> Folder:
            found = self._status(conn, key, "AND f.name = ?", (wanted,))
            if not found:
                raise FolderNotFound(f"no folder {name}")
            return found[0]

        return await self._reading(run, user)

    async def create_folder(
        self, user: str, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        key, wanted = user.lower(), normalize_name(name)

        def run(conn: sqlite3.Connection, changes: Changes) -> None:
            if folder_row(conn, key, wanted) is not None:
                raise FolderExists(f"{wanted} already exists")
            self._make_parents(conn, key, wanted, changes)
            modseq = bump(conn, key)
            new_folder(conn, key, wanted, special_use, False, modseq)
            changes.append((key, Change(ChangeKind.FOLDER_CREATED, wanted, modseq)))

        await self._writing(run, key)
        return await self.folder(key, wanted)

    @staticmethod
    def _make_parents(conn: sqlite3.Connection, user: str, name: str, changes: Changes) -> None:
        for parent in parents_of(name):
            if folder_row(conn, user, parent) is None:
                modseq = bump(conn, user)
                new_folder(conn, user, parent, None, False, modseq)
                changes.append((user, Change(ChangeKind.FOLDER_CREATED, parent, modseq)))

    async def rename_folder(self, user: str, old: str, new: str) -> None:
        key, target = user.lower(), normalize_name(new)

        def run(conn: sqlite3.Connection, changes: Changes) -> None:
            source = self._folder(conn, key, old)
            old_name = str(source[1])
            if folder_row(conn, key, target) is not None:
                raise FolderExists(f"{target} already exists")
            if target == old_name or is_inside(target, old_name):
                raise FolderExists(f"{old_name} cannot be renamed inside itself")
            self._make_parents(conn, key, target, changes)
            moving = [(int(source[0]), old_name)]
            if old_name != INBOX:  # INBOX's sub-folders stay (RFC 9051 §6.3.6)
                moving += [
                    (int(r[0]), str(r[1]))
                    for r in conn.execute(
                        "SELECT id, name FROM folders WHERE owner = ? AND deleted_at IS NULL"
                        " ORDER BY name",
                        (key,),
                    ).fetchall()
                    if is_inside(str(r[1]), old_name)
                ]
            modseq = bump(conn, key)
            for folder_id, name in moving:
                renamed = target + name[len(old_name) :]
                conn.execute(
                    "UPDATE folders SET name = ?, highest_modseq = ? WHERE id = ?",
                    (renamed, modseq, folder_id),
                )
                changes.append((key, Change(ChangeKind.FOLDER_RENAMED, renamed, modseq, (), name)))
            if old_name == INBOX:
                conn.execute("UPDATE folders SET special_use = NULL WHERE id = ?", (source[0],))
                new_folder(conn, key, INBOX, None, True, modseq)
                changes.append((key, Change(ChangeKind.FOLDER_CREATED, INBOX, modseq)))

        await self._writing(run, key)

    async def delete_folder(self, user: str, name: str) -> None:
        key = user.lower()

        def run(conn: sqlite3.Connection, changes: Changes) -> None:
            row = self._folder(conn, key, name)
            folder_name = str(row[1])
            if folder_name == INBOX:
                raise InboxProtected("INBOX cannot be deleted")
            names = conn.execute(
                "SELECT name FROM folders WHERE owner = ? AND deleted_at IS NULL", (key,)
            ).fetchall()
            if any(is_inside(str(n[0]), folder_name) for n in names):
                raise FolderHasChildren(f"{folder_name} has sub-folders; delete those first")
            now = time.time()
            modseq = bump(conn, key)
            conn.execute(
                "UPDATE messages SET deleted_at = ? WHERE folder_id = ? AND deleted_at IS NULL",
                (now, row[0]),
            )
            conn.execute(
                "UPDATE folders SET deleted_at = ?, highest_modseq = ? WHERE id = ?",
                (now, modseq, row[0]),
            )
            changes.append((key, Change(ChangeKind.FOLDER_DELETED, folder_name, modseq)))

        await self._writing(run, key)

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        key = user.lower()

        def run(conn: sqlite3.Connection, changes: Changes) -> None:
            row = self._folder(conn, key, name)
            if bool(row[6]) == subscribed:
                return
            modseq = bump(conn, key)
            conn.execute("UPDATE folders SET subscribed = ? WHERE id = ?", (subscribed, row[0]))
            changes.append((key, Change(ChangeKind.FOLDER_SUBSCRIBED, str(row[1]), modseq)))

        await self._writing(run, key)

    # ------------------------------------------------------------------ messages

    async def messages(
        self, user: str, folder: str, changed_since: int | None = None
    ) -> list[MessageInfo]:
        def run(conn: sqlite3.Connection, key: str) -> list[MessageInfo]:
            folder_id = self._folder(conn, key, folder)[0]
            query = (
                "SELECT uid, modseq, flags, size, received_at, blob_id FROM messages"
                " WHERE folder_id = ? AND deleted_at IS NULL"
            )
            args: tuple[Any, ...] = (folder_id,)
            if changed_since is not None:
                query += " AND modseq > ?"
                args = (folder_id, changed_since)
            # Most messages share a few flag sets: each text is parsed once per listing.
            parsed: dict[str, frozenset[str]] = {}
            out = []
            for uid, modseq, text, size, received_at, blob_id in conn.execute(
                query + " ORDER BY uid", args
            ).fetchall():
                flags = parsed.get(text)
                if flags is None:
                    flags = parsed[text] = flags_of(text)
                out.append(MessageInfo(uid, modseq, flags, size, received_at, blob_id))
            return out

        return await self._reading(run, user)

    async def vanished(self, user: str, folder: str, since: int) -> list[int]:
        def run(conn: sqlite3.Connection, key: str) -> list[int]:
            folder_id = self._folder(conn, key, folder)[0]
            rows = conn.execute(
                "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid",
                (folder_id, since),
            ).fetchall()
            return [int(r[0]) for r in rows]

        return await self._reading(run, user)

    async def store_flags(
        self,
        user: str,
        folder: str,
        uids: Collection[int],
        mode: StoreMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagsStored:
        key, wanted, chosen = user.lower(), normalize_flags(flags), set(uids)

        def run(conn: sqlite3.Connection, changes: Changes) -> FlagsStored:
            row = self._folder(conn, key, folder)
            folder_id, name = int(row[0]), str(row[1])
            failed: list[int] = []
            changing: list[tuple[int, frozenset[str], int, str, float]] = []
            for uid, text, modseq, size, received_at, blob_id in conn.execute(
                "SELECT uid, flags, modseq, size, received_at, blob_id FROM messages"
                " WHERE folder_id = ? AND deleted_at IS NULL ORDER BY uid",
                (folder_id,),
            ):
                if uid not in chosen:
                    continue
                if unchanged_since is not None and modseq > unchanged_since:
                    failed.append(uid)
                    continue
                current = flags_of(text)
                new = apply_flags(current, mode, wanted)
                if new != current:
                    changing.append((uid, new, size, blob_id, received_at))
            if not changing:
                return FlagsStored((), tuple(failed))
            modseq = bump(conn, key)
            conn.executemany(
                "UPDATE messages SET flags = ?, modseq = ? WHERE folder_id = ? AND uid = ?",
                [(flags_text(new), modseq, folder_id, uid) for uid, new, *_ in changing],
            )
            conn.execute("UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, folder_id))
            changed = tuple(
                MessageInfo(uid, modseq, new, size, received_at, blob_id)
                for uid, new, size, blob_id, received_at in changing
            )
            uids_changed = tuple(m.uid for m in changed)
            changes.append((key, Change(ChangeKind.FLAGS, name, modseq, uids_changed)))
            return FlagsStored(changed, tuple(failed))

        return await self._writing(run, key)

    async def append(
        self,
        user: str,
        folder: str,
        blob: BlobRef,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        *,
        sender: str = "",
        subject: str = "",
    ) -> Appended:
        key, wanted = user.lower(), normalize_flags(flags)
        now = time.time()
        when = now if internaldate is None else internaldate

        def run(conn: sqlite3.Connection, changes: Changes) -> Appended:
            row = self._folder(conn, key, folder)
            folder_id, name, uidvalidity = int(row[0]), str(row[1]), int(row[3])
            conn.execute(
                "INSERT OR IGNORE INTO blobs (id, size, sha256, created_at) VALUES (?, ?, ?, ?)",
                (blob.blob_id, blob.size, blob.sha256, now),
            )
            modseq = bump(conn, key)
            uid = take_uid(conn, folder_id, modseq)
            conn.execute(
                "INSERT INTO messages (mailbox, folder_id, uid, blob_id, size, received_at,"
                " sender, subject, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    folder_id,
                    uid,
                    blob.blob_id,
                    blob.size,
                    when,
                    sender,
                    subject,
                    flags_text(wanted),
                    modseq,
                ),
            )
            changes.append((key, Change(ChangeKind.EXISTS, name, modseq, (uid,))))
            return Appended(uidvalidity, uid, modseq)

        return await self._writing(run, key)

    def _copy_or_move(
        self,
        conn: sqlite3.Connection,
        changes: Changes,
        key: str,
        source: str,
        uids: Collection[int],
        target: str,
        move: bool,
    ) -> Copied:
        src, dst = self._folder(conn, key, source), self._folder(conn, key, target)
        chosen = set(uids)
        rows = [
            r
            for r in conn.execute(
                "SELECT id, uid FROM messages WHERE folder_id = ? AND deleted_at IS NULL"
                " ORDER BY uid",
                (src[0],),
            ).fetchall()
            if r[1] in chosen
        ]
        if not rows:
            return Copied(int(dst[3]), (), current_modseq(conn, key))
        modseq = bump(conn, key)
        pairs: list[tuple[int, int]] = []
        for message_id, uid in rows:
            new_uid = take_uid(conn, dst[0], modseq)
            if move:
                conn.execute(
                    "UPDATE messages SET folder_id = ?, uid = ?, modseq = ? WHERE id = ?",
                    (dst[0], new_uid, modseq, message_id),
                )
            else:
                conn.execute(
                    "INSERT INTO messages (mailbox, folder_id, uid, blob_id, size, received_at,"
                    " sender, subject, flags, modseq) SELECT mailbox, ?, ?, blob_id, size,"
                    " received_at, sender, subject, flags, ? FROM messages WHERE id = ?",
                    (dst[0], new_uid, modseq, message_id),
                )
            pairs.append((uid, new_uid))
        changes.append(
            (key, Change(ChangeKind.EXISTS, str(dst[1]), modseq, tuple(t for _, t in pairs)))
        )
        if move:
            gone = tuple(s for s, _ in pairs)
            conn.executemany(
                "INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)",
                [(src[0], uid, modseq) for uid in gone],
            )
            conn.execute("UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, src[0]))
            changes.append((key, Change(ChangeKind.EXPUNGE, str(src[1]), modseq, gone)))
        return Copied(int(dst[3]), tuple(pairs), modseq)

    async def copy(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        key = user.lower()
        return await self._writing(
            lambda conn, changes: self._copy_or_move(
                conn, changes, key, source, uids, target, False
            ),
            key,
        )

    async def move(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        key = user.lower()
        return await self._writing(
            lambda conn, changes: self._copy_or_move(
                conn, changes, key, source, uids, target, True
            ),
            key,
        )

    def _expunge(
        self,
        conn: sqlite3.Connection,
        changes: Changes,
        key: str,
        folder: str,
        uids: Collection[int] | None,
        only_deleted: bool,
    ) -> list[int]:
        row = self._folder(conn, key, folder)
        chosen = None if uids is None else set(uids)
        gone = [
            int(uid)
            for uid, text in conn.execute(
                "SELECT uid, flags FROM messages WHERE folder_id = ? AND deleted_at IS NULL"
                " ORDER BY uid",
                (row[0],),
            ).fetchall()
            if (chosen is None or uid in chosen) and (not only_deleted or DELETED in text.split())
        ]
        found = expunge_rows(conn, key, int(row[0]), str(row[1]), gone, time.time())
        changes += [(key, c) for c in found]
        return gone

    async def expunge(
        self, user: str, folder: str, uids: Collection[int] | None = None
    ) -> list[int]:
        key = user.lower()
        return await self._writing(
            lambda conn, changes: self._expunge(conn, changes, key, folder, uids, True), key
        )

    async def remove(self, user: str, folder: str, uids: Collection[int]) -> list[int]:
        key = user.lower()
        return await self._writing(
            lambda conn, changes: self._expunge(conn, changes, key, folder, uids, False), key
        )

    async def usage(self, user: str) -> Usage:
        def run(conn: sqlite3.Connection, key: str) -> Usage:
            count, octets = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
                " WHERE mailbox = ? AND deleted_at IS NULL",
                (key,),
            ).fetchone()
            return Usage(int(count), int(octets))

        return await self._reading(run, user)

    # ------------------------------------------------------------------ deleted mail

    async def deleted(self, user: str) -> list[DeletedMessage]:
        def run(conn: sqlite3.Connection, key: str) -> list[DeletedMessage]:
            rows = conn.execute(
                "SELECT m.id, f.name, m.uid, m.size, m.received_at, m.deleted_at, m.sender,"
                " m.subject, m.blob_id FROM messages m JOIN folders f ON f.id = m.folder_id"
                " WHERE m.mailbox = ? AND m.deleted_at IS NOT NULL ORDER BY m.deleted_at, m.id",
                (key,),
            ).fetchall()
            return [DeletedMessage(*r) for r in rows]

        return await self._reading(run, user)

    async def undelete(
        self, user: str, ids: Collection[int] | None = None, since: float | None = None
    ) -> int:
        key = user.lower()

        def run(conn: sqlite3.Connection, changes: Changes) -> int:
            count, made = undelete_rows(conn, key, ids, since)
            changes += made
            return count

        return await self._writing(run, key)

    async def purge_deleted(self, older_than: float) -> int:
        return await self._run(self.store.purge_deleted, older_than)

    # ------------------------------------------------------------------ changes

    async def highest_modseq(self, user: str) -> int:
        return await self._reading(lambda conn, key: current_modseq(conn, key), user)

    async def wait_changes(self, user: str, since: int, timeout: float) -> list[Change]:
        key = user.lower()
        return await self.hub.wait(key, since, timeout, lambda: self.highest_modseq(key))


if TYPE_CHECKING:  # mypy checks that this class is a Mailboxes

    def _is_mailboxes(store: SqliteStore) -> Mailboxes:
        return SqliteMailboxes(store)
