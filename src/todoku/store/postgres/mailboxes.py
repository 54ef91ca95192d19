"""``Mailboxes`` on PostgreSQL: folders, flags, MODSEQ and a change feed across nodes (issue 19).

Every change is one transaction that first locks the user's ``mail_users`` row and takes the
next MODSEQ there (``folders``): a user's changes are serialised on every node, so MODSEQ and
UID order agree everywhere. Expunged messages keep their row with ``deleted_at`` set (the
recoverable deleted mail) and leave their UID in ``vanished`` for QRESYNC; a moved message's
row goes to its new folder's UID directly (moved mail is not deleted mail). A deleted folder's
row stays, marked ``gone``, so that its messages can still say where they were.

The change feed: after a change commits, this node's ``ChangeHub`` hears it (waking this node's
IDLE sessions at once), and the same transaction sends it to every other node with
``NOTIFY todoku_mail`` (delivered only at the commit, so no node hears of a change that was
rolled back). A node that misses notifications (its LISTEN connection was down) still sees the
user's MODSEQ move when a waiter looks again, and that waiter gets a RESYNC.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

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
    normalize_flags,
    normalize_name,
    parents_of,
)
from todoku.store.postgres.folders import (
    add_message,
    folder_id,
    lock_user,
    make_folder,
    next_modseq,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from todoku.store.postgres.backend import Database

MAIL_CHANNEL = "todoku_mail"
# UIDs per notification: a change about more messages goes out as several, with the same MODSEQ.
UIDS_PER_NOTE = 500

_FOLDER_STATUS = (
    "SELECT f.name, f.special_use, f.uidvalidity, f.uidnext, f.highest_modseq, f.subscribed,"
    " count(m.id), count(m.id) FILTER (WHERE NOT ('\\Seen' = ANY(m.flags))),"
    " coalesce(sum(m.size), 0)"
    " FROM folders f LEFT JOIN messages m ON m.folder_id = f.id AND m.deleted_at IS NULL"
    " WHERE f.address = %s AND NOT f.gone"
)


def _folder(row: Sequence[Any]) -> Folder:
    return Folder(
        name=row[0],
        special_use=SpecialUse(row[1]) if row[1] else None,
        uidvalidity=int(row[2]),
        uidnext=int(row[3]),
        highest_modseq=int(row[4]),
        subscribed=bool(row[5]),
        messages=int(row[6]),
        unseen=int(row[7]),
        size=int(row[8]),
    )


def _info(row: Sequence[Any]) -> MessageInfo:
    return MessageInfo(
        int(row[0]), int(row[1]), frozenset(row[2]), int(row[3]), float(row[4]), row[5]
    )


def change_notes(node: str, user: str, changes: Sequence[Change]) -> list[str]:
    """NOTIFY payloads (each well under PostgreSQL's 8000 bytes) that carry ``changes``."""
    notes = []
    for change in changes:
        uid_groups = [
            change.uids[i : i + UIDS_PER_NOTE] for i in range(0, len(change.uids), UIDS_PER_NOTE)
        ] or [()]
        for uids in uid_groups:
            encoded = [change.kind.value, change.folder, change.modseq, list(uids)]
            notes.append(
                json.dumps({"node": node, "user": user, "change": [*encoded, change.previous_name]})
            )
    return notes


def read_note(payload: str) -> tuple[str, str, Change]:
    """(node, user, change) of a ``change_notes`` payload; ValueError when it is not one."""
    try:
        note = json.loads(payload)
        kind, folder, modseq, uids, previous = note["change"]
        change = Change(
            ChangeKind(kind),
            None if folder is None else str(folder),
            int(modseq),
            tuple(int(u) for u in uids),
            None if previous is None else str(previous),
        )
        return str(note["node"]), str(note["user"]), change
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a change notification: {payload[:100]!r}") from exc


class PgMailboxes:
    def __init__(self, db: Database, hub: ChangeHub, node: str) -> None:
        self._db = db
        self.hub = hub
        self._node = node
        self._known: set[str] = set()  # users whose mail_users row exists (rows never go)

    # ------------------------------------------------------------------ internals

    async def _ensure(self, user: str) -> str:
        key = user.lower()
        if key not in self._known:
            await self._db.run_write(lambda conn: lock_user(conn, key))
            self._known.add(key)
        return key

    async def _change(self, user: str, work: Any) -> Any:
        """``work(conn, changes)`` in one transaction with the user locked; the changes it
        appends are sent to the other nodes at the commit and to this node's hub after it."""
        key = user.lower()
        changes: list[Change] = []

        async def run(conn: AsyncConnection[Any]) -> Any:
            changes.clear()
            await lock_user(conn, key)
            result = await work(conn, changes)
            for note in change_notes(self._node, key, changes):
                await conn.execute("SELECT pg_notify(%s, %s)", (MAIL_CHANNEL, note))
            return result

        result = await self._db.run_write(run)
        self._known.add(key)
        self.hub.publish(key, changes)
        return result

    async def _folder_row(
        self, conn: AsyncConnection[Any], user: str, name: str
    ) -> tuple[int, str, int]:
        """(id, name, uidvalidity) of a live folder; FolderNotFound."""
        cur = await conn.execute(
            "SELECT id, name, uidvalidity FROM folders WHERE address = %s AND name = %s"
            " AND NOT gone",
            (user, normalize_name(name)),
        )
        row = await cur.fetchone()
        if row is None:
            raise FolderNotFound(f"no folder {name}")
        return int(row[0]), str(row[1]), int(row[2])

    async def _names(self, conn: AsyncConnection[Any], user: str) -> set[str]:
        cur = await conn.execute(
            "SELECT name FROM folders WHERE address = %s AND NOT gone", (user,)
        )
        return {row[0] for row in await cur.fetchall()}

    async def _make_parents(
        self, conn: AsyncConnection[Any], user: str, name: str, changes: list[Change]
    ) -> None:
        names = await self._names(conn, user)
        for parent in parents_of(name):
            if parent not in names:
                modseq = await next_modseq(conn, user)
                await make_folder(conn, user, parent, None, subscribed=False, modseq=modseq)
                changes.append(Change(ChangeKind.FOLDER_CREATED, parent, modseq))

    # ------------------------------------------------------------------ folders

    async def ensure_defaults(self, user: str) -> None:
        async def defaults(conn: AsyncConnection[Any], changes: list[Change]) -> None:
            cur = await conn.execute(
                "SELECT defaults_done FROM mail_users WHERE address = %s", (key,)
            )
            row = await cur.fetchone()
            if row is not None and row[0]:
                return
            for name, role in DEFAULT_FOLDERS:
                cur = await conn.execute(
                    "SELECT id, special_use FROM folders WHERE address = %s AND name = %s"
                    " AND NOT gone",
                    (key, name),
                )
                existing = await cur.fetchone()
                if existing is None:
                    modseq = await next_modseq(conn, key)
                    role_name = role.value if role is not None else None
                    await make_folder(conn, key, name, role_name, subscribed=True, modseq=modseq)
                    changes.append(Change(ChangeKind.FOLDER_CREATED, name, modseq))
                elif existing[1] is None and role is not None:
                    await conn.execute(
                        "UPDATE folders SET special_use = %s WHERE id = %s",
                        (role.value, existing[0]),
                    )
            await conn.execute(
                "UPDATE mail_users SET defaults_done = true WHERE address = %s", (key,)
            )

        key = user.lower()
        await self._change(key, defaults)

    async def folders(self, user: str) -> list[Folder]:
        key = await self._ensure(user)

        async def every(conn: AsyncConnection[Any]) -> list[Folder]:
            cur = await conn.execute(
                _FOLDER_STATUS + ' GROUP BY f.id ORDER BY f.name COLLATE "C"', (key,)
            )
            return [_folder(row) for row in await cur.fetchall()]

        return await self._db.read(every)

    async def folder(self, user: str, name: str) -> Folder:
        key = await self._ensure(user)
        wanted = normalize_name(name)

        async def one(conn: AsyncConnection[Any]) -> Folder:
            cur = await conn.execute(
                _FOLDER_STATUS + " AND f.name = %s GROUP BY f.id", (key, wanted)
            )
            row = await cur.fetchone()
            if row is None:
                raise FolderNotFound(f"no folder {name}")
            return _folder(row)

        return await self._db.read(one)

    async def create_folder(
        self, user: str, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        key = user.lower()
        wanted = normalize_name(name)

        async def create(conn: AsyncConnection[Any], changes: list[Change]) -> None:
            if wanted in await self._names(conn, key):
                raise FolderExists(f"{wanted} already exists")
            await self._make_parents(conn, key, wanted, changes)
            modseq = await next_modseq(conn, key)
            role = special_use.value if special_use is not None else None
            await make_folder(conn, key, wanted, role, subscribed=False, modseq=modseq)
            changes.append(Change(ChangeKind.FOLDER_CREATED, wanted, modseq))

        await self._change(key, create)
        return await self.folder(key, wanted)

    async def rename_folder(self, user: str, old: str, new: str) -> None:
        key = user.lower()

        async def rename(conn: AsyncConnection[Any], changes: list[Change]) -> None:
            source_id, old_name, _ = await self._folder_row(conn, key, old)
            target = normalize_name(new)
            names = await self._names(conn, key)
            if target in names:
                raise FolderExists(f"{target} already exists")
            if target == old_name or target.startswith(old_name + "/"):
                raise FolderExists(f"{old_name} cannot be renamed inside itself")
            await self._make_parents(conn, key, target, changes)
            moving = [old_name]
            if old_name != INBOX:  # INBOX's sub-folders stay where they are (RFC 9051 §6.3.6)
                moving += sorted(n for n in names if n.startswith(old_name + "/"))
            modseq = await next_modseq(conn, key)
            for name in moving:
                renamed = target + name[len(old_name) :]
                await conn.execute(
                    "UPDATE folders SET name = %s, highest_modseq = %s"
                    " WHERE address = %s AND name = %s AND NOT gone",
                    (renamed, modseq, key, name),
                )
                changes.append(Change(ChangeKind.FOLDER_RENAMED, renamed, modseq, (), name))
            if old_name == INBOX:
                await conn.execute(
                    "UPDATE folders SET special_use = NULL WHERE id = %s", (source_id,)
                )
                await make_folder(conn, key, INBOX, None, subscribed=True, modseq=modseq)
                changes.append(Change(ChangeKind.FOLDER_CREATED, INBOX, modseq))

        await self._change(key, rename)

    async def delete_folder(self, user: str, name: str) -> None:
        key = user.lower()

        async def delete(conn: AsyncConnection[Any], changes: list[Change]) -> None:
            fid, found, _ = await self._folder_row(conn, key, name)
            if found == INBOX:
                raise InboxProtected("INBOX cannot be deleted")
            if any(n.startswith(found + "/") for n in await self._names(conn, key)):
                raise FolderHasChildren(f"{found} has sub-folders; delete those first")
            await conn.execute(
                "UPDATE messages SET deleted_at = %s WHERE folder_id = %s AND deleted_at IS NULL",
                (time.time(), fid),
            )
            await conn.execute("UPDATE folders SET gone = true WHERE id = %s", (fid,))
            modseq = await next_modseq(conn, key)
            changes.append(Change(ChangeKind.FOLDER_DELETED, found, modseq))

        await self._change(key, delete)

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        key = user.lower()

        async def sub(conn: AsyncConnection[Any], changes: list[Change]) -> None:
            fid, found, _ = await self._folder_row(conn, key, name)
            cur = await conn.execute(
                "UPDATE folders SET subscribed = %s WHERE id = %s AND subscribed <> %s",
                (subscribed, fid, subscribed),
            )
            if cur.rowcount:
                modseq = await next_modseq(conn, key)
                changes.append(Change(ChangeKind.FOLDER_SUBSCRIBED, found, modseq))

        await self._change(key, sub)

    # ------------------------------------------------------------------ messages

    async def messages(
        self, user: str, folder: str, changed_since: int | None = None
    ) -> list[MessageInfo]:
        key = await self._ensure(user)

        async def listing(conn: AsyncConnection[Any]) -> list[MessageInfo]:
            fid, _, _ = await self._folder_row(conn, key, folder)
            cur = await conn.execute(
                "SELECT uid, modseq, flags, size, internaldate, blob_id FROM messages"
                " WHERE folder_id = %s AND deleted_at IS NULL AND modseq > %s ORDER BY uid",
                (fid, -1 if changed_since is None else changed_since),
            )
            return [_info(row) for row in await cur.fetchall()]

        return await self._db.read(listing)

    async def vanished(self, user: str, folder: str, since: int) -> list[int]:
        key = await self._ensure(user)

        async def gone(conn: AsyncConnection[Any]) -> list[int]:
            fid, _, _ = await self._folder_row(conn, key, folder)
            cur = await conn.execute(
                "SELECT uid FROM vanished WHERE folder_id = %s AND modseq > %s ORDER BY uid",
                (fid, since),
            )
            return [int(row[0]) for row in await cur.fetchall()]

        return await self._db.read(gone)

    async def store_flags(
        self,
        user: str,
        folder: str,
        uids: Collection[int],
        mode: StoreMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagsStored:
        key = user.lower()
        wanted = normalize_flags(flags)
        chosen = sorted(set(uids))

        async def store(conn: AsyncConnection[Any], changes: list[Change]) -> FlagsStored:
            fid, found, _ = await self._folder_row(conn, key, folder)
            cur = await conn.execute(
                "SELECT uid, modseq, flags, size, internaldate, blob_id FROM messages"
                " WHERE folder_id = %s AND deleted_at IS NULL AND uid = ANY(%s) ORDER BY uid",
                (fid, chosen),
            )
            failed: list[int] = []
            changing: list[tuple[MessageInfo, frozenset[str]]] = []
            for row in await cur.fetchall():
                message = _info(row)
                if unchanged_since is not None and message.modseq > unchanged_since:
                    failed.append(message.uid)
                    continue
                new = apply_flags(message.flags, mode, wanted)
                if new != message.flags:
                    changing.append((message, new))
            if not changing:
                return FlagsStored((), tuple(failed))
            modseq = await next_modseq(conn, key)
            async with conn.cursor() as c:
                await c.executemany(
                    "UPDATE messages SET flags = %s, modseq = %s WHERE folder_id = %s"
                    " AND uid = %s AND deleted_at IS NULL",
                    [(sorted(new), modseq, fid, m.uid) for m, new in changing],
                )
            await conn.execute(
                "UPDATE folders SET highest_modseq = %s WHERE id = %s", (modseq, fid)
            )
            changed = tuple(
                MessageInfo(m.uid, modseq, new, m.size, m.internaldate, m.blob_id)
                for m, new in changing
            )
            changes.append(Change(ChangeKind.FLAGS, found, modseq, tuple(m.uid for m in changed)))
            return FlagsStored(changed, tuple(failed))

        result: FlagsStored = await self._change(key, store)
        return result

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
        key = user.lower()

        async def append(conn: AsyncConnection[Any], changes: list[Change]) -> Appended:
            fid, found, uidvalidity = await self._folder_row(conn, key, folder)
            wanted = sorted(normalize_flags(flags))
            modseq = await next_modseq(conn, key)
            when = time.time() if internaldate is None else internaldate
            uid = await add_message(
                conn, fid, modseq, wanted, blob.blob_id, blob.size, when, sender, subject
            )
            changes.append(Change(ChangeKind.EXISTS, found, modseq, (uid,)))
            return Appended(uidvalidity, uid, modseq)

        result: Appended = await self._change(key, append)
        return result

    async def _copy(
        self,
        conn: AsyncConnection[Any],
        key: str,
        source: str,
        uids: Collection[int],
        target: str,
        changes: list[Change],
        *,
        move: bool,
    ) -> Copied:
        src, src_name, _ = await self._folder_row(conn, key, source)
        dst, dst_name, uidvalidity = await self._folder_row(conn, key, target)
        cur = await conn.execute(
            "SELECT id, uid, flags, size, internaldate, blob_id, sender, subject FROM messages"
            " WHERE folder_id = %s AND deleted_at IS NULL AND uid = ANY(%s) ORDER BY uid",
            (src, sorted(set(uids))),
        )
        rows = await cur.fetchall()
        if not rows:
            cur = await conn.execute("SELECT modseq FROM mail_users WHERE address = %s", (key,))
            current = await cur.fetchone()
            return Copied(uidvalidity, (), int(current[0]) if current else 0)
        modseq = await next_modseq(conn, key)
        pairs = []
        for row in rows:
            new_uid = await add_message(
                conn, dst, modseq, list(row[2]), row[5], row[3], row[4], row[6], row[7]
            )
            pairs.append((int(row[1]), new_uid))
        changes.append(Change(ChangeKind.EXISTS, dst_name, modseq, tuple(n for _, n in pairs)))
        if move:
            gone = [old for old, _ in pairs]
            await conn.execute(
                "DELETE FROM messages WHERE id = ANY(%s)", ([int(row[0]) for row in rows],)
            )
            await self._vanish(conn, src, gone, modseq)
            changes.append(Change(ChangeKind.EXPUNGE, src_name, modseq, tuple(gone)))
        return Copied(uidvalidity, tuple(pairs), modseq)

    async def _vanish(
        self, conn: AsyncConnection[Any], folder: int, uids: list[int], modseq: int
    ) -> None:
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO vanished (folder_id, uid, modseq) VALUES (%s, %s, %s)"
                " ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq",
                [(folder, uid, modseq) for uid in uids],
            )
        await conn.execute("UPDATE folders SET highest_modseq = %s WHERE id = %s", (modseq, folder))

    async def copy(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        key = user.lower()

        async def copy(conn: AsyncConnection[Any], changes: list[Change]) -> Copied:
            return await self._copy(conn, key, source, uids, target, changes, move=False)

        result: Copied = await self._change(key, copy)
        return result

    async def move(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        key = user.lower()

        async def move(conn: AsyncConnection[Any], changes: list[Change]) -> Copied:
            return await self._copy(conn, key, source, uids, target, changes, move=True)

        result: Copied = await self._change(key, move)
        return result

    async def _expunge(
        self,
        user: str,
        folder: str,
        uids: Collection[int] | None,
        *,
        deleted_only: bool,
    ) -> list[int]:
        key = user.lower()

        async def expunge(conn: AsyncConnection[Any], changes: list[Change]) -> list[int]:
            fid, found, _ = await self._folder_row(conn, key, folder)
            query = "SELECT uid FROM messages WHERE folder_id = %s AND deleted_at IS NULL"
            args: list[Any] = [fid]
            if deleted_only:
                query += " AND %s = ANY(flags)"
                args.append(DELETED)
            if uids is not None:
                query += " AND uid = ANY(%s)"
                args.append(sorted(set(uids)))
            cur = await conn.execute(query + " ORDER BY uid", args)
            gone = [int(row[0]) for row in await cur.fetchall()]
            if not gone:
                return []
            modseq = await next_modseq(conn, key)
            await conn.execute(
                "UPDATE messages SET deleted_at = %s WHERE folder_id = %s AND uid = ANY(%s)"
                " AND deleted_at IS NULL",
                (time.time(), fid, gone),
            )
            await self._vanish(conn, fid, gone, modseq)
            changes.append(Change(ChangeKind.EXPUNGE, found, modseq, tuple(gone)))
            return gone

        result: list[int] = await self._change(key, expunge)
        return result

    async def expunge(
        self, user: str, folder: str, uids: Collection[int] | None = None
    ) -> list[int]:
        return await self._expunge(user, folder, uids, deleted_only=True)

    async def remove(self, user: str, folder: str, uids: Collection[int]) -> list[int]:
        return await self._expunge(user, folder, uids, deleted_only=False)

    async def usage(self, user: str) -> Usage:
        key = await self._ensure(user)

        async def usage(conn: AsyncConnection[Any]) -> Usage:
            cur = await conn.execute(
                "SELECT count(m.id), coalesce(sum(m.size), 0) FROM messages m"
                " JOIN folders f ON f.id = m.folder_id"
                " WHERE f.address = %s AND m.deleted_at IS NULL",
                (key,),
            )
            row = await cur.fetchone()
            assert row is not None
            return Usage(int(row[0]), int(row[1]))

        return await self._db.read(usage)

    # ------------------------------------------------------------------ deleted mail

    async def deleted(self, user: str) -> list[DeletedMessage]:
        key = await self._ensure(user)

        async def deleted(conn: AsyncConnection[Any]) -> list[DeletedMessage]:
            cur = await conn.execute(
                "SELECT m.id, f.name, m.uid, m.size, m.internaldate, m.deleted_at, m.sender,"
                " m.subject, m.blob_id FROM messages m JOIN folders f ON f.id = m.folder_id"
                " WHERE f.address = %s AND m.deleted_at IS NOT NULL ORDER BY m.deleted_at, m.id",
                (key,),
            )
            return [DeletedMessage(*row) for row in await cur.fetchall()]

        return await self._db.read(deleted)

    async def undelete(
        self, user: str, ids: Collection[int] | None = None, since: float | None = None
    ) -> int:
        key = user.lower()

        async def undelete(conn: AsyncConnection[Any], changes: list[Change]) -> int:
            query = (
                "SELECT m.id, m.folder_id, f.name, f.gone FROM messages m"
                " JOIN folders f ON f.id = m.folder_id"
                " WHERE f.address = %s AND m.deleted_at IS NOT NULL"
            )
            args: list[Any] = [key]
            if ids is not None:
                query += " AND m.id = ANY(%s)"
                args.append(sorted(set(ids)))
            if since is not None:
                query += " AND m.deleted_at >= %s"
                args.append(since)
            cur = await conn.execute(query + " ORDER BY m.id", args)
            chosen = await cur.fetchall()
            if not chosen:
                return 0
            modseq = await next_modseq(conn, key)
            by_folder: dict[str, list[int]] = {}
            for message_id, old_folder, name, gone in chosen:
                target = old_folder
                if gone:  # deleted (and maybe re-created) since: a live one of that name
                    target = await folder_id(conn, key, name) or await make_folder(
                        conn, key, name, None, subscribed=False, modseq=modseq
                    )
                cur = await conn.execute(
                    "UPDATE folders SET uidnext = uidnext + 1, highest_modseq = %s WHERE id = %s"
                    " RETURNING uidnext - 1",
                    (modseq, target),
                )
                row = await cur.fetchone()
                assert row is not None
                await conn.execute(
                    "UPDATE messages SET deleted_at = NULL, folder_id = %s, uid = %s,"
                    " modseq = %s WHERE id = %s",
                    (target, row[0], modseq, message_id),
                )
                by_folder.setdefault(name, []).append(int(row[0]))
            changes.extend(
                Change(ChangeKind.EXISTS, name, modseq, tuple(u)) for name, u in by_folder.items()
            )
            return len(chosen)

        result: int = await self._change(key, undelete)
        return result

    async def purge_deleted(self, older_than: float) -> int:
        async def purge(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "DELETE FROM messages WHERE deleted_at IS NOT NULL AND deleted_at < %s"
                " RETURNING blob_id",
                (older_than,),
            )
            rows = await cur.fetchall()
            blob_ids = sorted({row[0] for row in rows})
            # Content goes with the last row that refers to it (one transaction: never a row
            # naming content that is gone).
            await conn.execute(
                "DELETE FROM blobs b WHERE b.id = ANY(%s)"
                " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"
                " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = b.id)",
                (blob_ids,),
            )
            return len(rows)

        return await self._db.run_write(purge)

    # ------------------------------------------------------------------ changes

    async def highest_modseq(self, user: str) -> int:
        key = await self._ensure(user)

        async def current(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute("SELECT modseq FROM mail_users WHERE address = %s", (key,))
            row = await cur.fetchone()
            return int(row[0]) if row else 1

        return await self._db.read(current)

    async def wait_changes(self, user: str, since: int, timeout: float) -> list[Change]:
        key = await self._ensure(user)

        async def current() -> int:
            return await self.highest_modseq(key)

        return await self.hub.wait(key, since, timeout, current)

    def heard(self, payload: str) -> None:
        """A ``NOTIFY todoku_mail`` from the LISTEN connection: another node's change."""
        node, user, change = read_note(payload)
        if node != self._node:
            self.hub.publish(user, [change])


if TYPE_CHECKING:

    def _is_mailboxes(m: PgMailboxes) -> Mailboxes:
        return m  # mypy checks here that the class is a Mailboxes
