"""``Mailboxes`` kept in memory: the reference the contract suite checks first, and a fake for
tests of IMAP and POP3 sessions that need no files. Nothing here survives the process.

Every method runs without awaiting in the middle, so on one event loop each is atomic."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from todoku.store.mailboxes import (
    DEFAULT_FOLDERS,
    DELETED,
    INBOX,
    SEEN,
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


@dataclass
class _Message:
    id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    blob: BlobRef
    internaldate: float
    sender: str
    subject: str
    deleted_at: float | None = None

    def info(self) -> MessageInfo:
        return MessageInfo(
            self.uid, self.modseq, self.flags, self.blob.size, self.internaldate, self.blob.blob_id
        )


@dataclass
class _Folder:
    name: str
    special_use: SpecialUse | None
    uidvalidity: int
    uidnext: int = 1
    highest_modseq: int = 0
    subscribed: bool = False
    live: dict[int, _Message] = field(default_factory=dict)  # by uid
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> modseq

    def status(self) -> Folder:
        messages = self.live.values()
        return Folder(
            name=self.name,
            special_use=self.special_use,
            uidvalidity=self.uidvalidity,
            uidnext=self.uidnext,
            highest_modseq=self.highest_modseq,
            subscribed=self.subscribed,
            messages=len(self.live),
            unseen=sum(1 for m in messages if SEEN not in m.flags),
            size=sum(m.blob.size for m in messages),
        )


@dataclass
class _User:
    # MODSEQ values start above 1, the HIGHESTMODSEQ a new empty folder shows: a first change
    # must be above what a client already saw (RFC 7162 §3.1.1).
    modseq: int = 1
    defaults_done: bool = False
    folders: dict[str, _Folder] = field(default_factory=dict)
    # Recoverable deleted mail: (folder object it was in, message).
    deleted: dict[int, tuple[_Folder, _Message]] = field(default_factory=dict)
    last_uidvalidity: int = 0


class MemoryMailboxes:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._users: dict[str, _User] = {}
        self._next_id = 1
        self._clock = clock or time.time
        self.hub = ChangeHub()

    # ------------------------------------------------------------------ internals

    def _user(self, user: str) -> _User:
        key = user.lower()
        account = self._users.get(key)
        if account is None:
            account = self._users[key] = _User()
            self._make_folder(account, INBOX, None, subscribed=True)
        return account

    def _make_folder(
        self, account: _User, name: str, special_use: SpecialUse | None, subscribed: bool = False
    ) -> _Folder:
        uidvalidity = max(int(self._clock()), account.last_uidvalidity + 1)
        account.last_uidvalidity = uidvalidity
        folder = _Folder(name, special_use, uidvalidity, highest_modseq=max(account.modseq, 1))
        folder.subscribed = subscribed
        account.folders[name] = folder
        return folder

    def _folder(self, account: _User, name: str) -> _Folder:
        folder = account.folders.get(normalize_name(name))
        if folder is None:
            raise FolderNotFound(f"no folder {name}")
        return folder

    def _bump(self, account: _User) -> int:
        account.modseq += 1
        return account.modseq

    def _new_message(
        self,
        folder: _Folder,
        modseq: int,
        flags: frozenset[str],
        blob: BlobRef,
        internaldate: float,
        sender: str,
        subject: str,
    ) -> _Message:
        message = _Message(
            self._next_id, folder.uidnext, modseq, flags, blob, internaldate, sender, subject
        )
        self._next_id += 1
        folder.uidnext += 1
        folder.live[message.uid] = message
        folder.highest_modseq = modseq
        return message

    def _publish(self, user: str, changes: list[Change]) -> None:
        self.hub.publish(user.lower(), changes)

    # ------------------------------------------------------------------ folders

    async def ensure_defaults(self, user: str) -> None:
        account = self._user(user)
        if account.defaults_done:
            return
        changes = []
        for name, role in DEFAULT_FOLDERS:
            existing = account.folders.get(name)
            if existing is None:
                modseq = self._bump(account)
                self._make_folder(account, name, role, subscribed=True).highest_modseq = modseq
                changes.append(Change(ChangeKind.FOLDER_CREATED, name, modseq))
            elif existing.special_use is None and role is not None:
                existing.special_use = role
        account.defaults_done = True
        self._publish(user, changes)

    async def folders(self, user: str) -> list[Folder]:
        account = self._user(user)
        return [account.folders[name].status() for name in sorted(account.folders)]

    async def folder(self, user: str, name: str) -> Folder:
        return self._folder(self._user(user), name).status()

    async def create_folder(
        self, user: str, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        account = self._user(user)
        name = normalize_name(name)
        if name in account.folders:
            raise FolderExists(f"{name} already exists")
        changes = []
        for parent in parents_of(name):
            if parent not in account.folders:
                modseq = self._bump(account)
                self._make_folder(account, parent, None).highest_modseq = modseq
                changes.append(Change(ChangeKind.FOLDER_CREATED, parent, modseq))
        modseq = self._bump(account)
        folder = self._make_folder(account, name, special_use)
        folder.highest_modseq = modseq
        changes.append(Change(ChangeKind.FOLDER_CREATED, name, modseq))
        self._publish(user, changes)
        return folder.status()

    async def rename_folder(self, user: str, old: str, new: str) -> None:
        account = self._user(user)
        source = self._folder(account, old)
        new = normalize_name(new)
        if new in account.folders:
            raise FolderExists(f"{new} already exists")
        if new == source.name or is_inside(new, source.name):
            raise FolderExists(f"{source.name} cannot be renamed inside itself")
        changes = []
        for parent in parents_of(new):
            if parent not in account.folders:
                modseq = self._bump(account)
                self._make_folder(account, parent, None).highest_modseq = modseq
                changes.append(Change(ChangeKind.FOLDER_CREATED, parent, modseq))
        old_name = source.name
        moving = [old_name]
        if old_name != INBOX:  # INBOX's sub-folders stay where they are (RFC 9051 §6.3.6)
            moving += sorted(n for n in account.folders if is_inside(n, old_name))
        modseq = self._bump(account)
        for name in moving:
            folder = account.folders.pop(name)
            folder.name = new + name[len(old_name) :]
            folder.highest_modseq = modseq
            account.folders[folder.name] = folder
            changes.append(Change(ChangeKind.FOLDER_RENAMED, folder.name, modseq, (), name))
        if old_name == INBOX:
            account.folders[new].special_use = None
            inbox = self._make_folder(account, INBOX, None, subscribed=True)
            inbox.highest_modseq = modseq
            changes.append(Change(ChangeKind.FOLDER_CREATED, INBOX, modseq))
        self._publish(user, changes)

    async def delete_folder(self, user: str, name: str) -> None:
        account = self._user(user)
        folder = self._folder(account, name)
        if folder.name == INBOX:
            raise InboxProtected("INBOX cannot be deleted")
        if any(is_inside(n, folder.name) for n in account.folders):
            raise FolderHasChildren(f"{folder.name} has sub-folders; delete those first")
        now = self._clock()
        for message in folder.live.values():
            message.deleted_at = now
            account.deleted[message.id] = (folder, message)
        folder.live.clear()
        del account.folders[folder.name]
        modseq = self._bump(account)
        self._publish(user, [Change(ChangeKind.FOLDER_DELETED, folder.name, modseq)])

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        account = self._user(user)
        folder = self._folder(account, name)
        if folder.subscribed == subscribed:
            return
        folder.subscribed = subscribed
        modseq = self._bump(account)
        self._publish(user, [Change(ChangeKind.FOLDER_SUBSCRIBED, folder.name, modseq)])

    # ------------------------------------------------------------------ messages

    async def messages(
        self, user: str, folder: str, changed_since: int | None = None
    ) -> list[MessageInfo]:
        box = self._folder(self._user(user), folder)
        return [
            box.live[uid].info()
            for uid in sorted(box.live)
            if changed_since is None or box.live[uid].modseq > changed_since
        ]

    async def vanished(self, user: str, folder: str, since: int) -> list[int]:
        box = self._folder(self._user(user), folder)
        return sorted(uid for uid, modseq in box.expunged.items() if modseq > since)

    async def store_flags(
        self,
        user: str,
        folder: str,
        uids: Collection[int],
        mode: StoreMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagsStored:
        account = self._user(user)
        box = self._folder(account, folder)
        wanted = normalize_flags(flags)
        failed: list[int] = []
        changing: list[tuple[_Message, frozenset[str]]] = []
        for uid in sorted(set(uids)):
            message = box.live.get(uid)
            if message is None:
                continue
            if unchanged_since is not None and message.modseq > unchanged_since:
                failed.append(uid)
                continue
            new = apply_flags(message.flags, mode, wanted)
            if new != message.flags:
                changing.append((message, new))
        if not changing:
            return FlagsStored((), tuple(failed))
        modseq = self._bump(account)
        for message, new in changing:
            message.flags = new
            message.modseq = modseq
        box.highest_modseq = modseq
        changed = tuple(m.info() for m, _ in changing)
        self._publish(
            user, [Change(ChangeKind.FLAGS, box.name, modseq, tuple(m.uid for m in changed))]
        )
        return FlagsStored(changed, tuple(failed))

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
        account = self._user(user)
        box = self._folder(account, folder)
        wanted = normalize_flags(flags)
        modseq = self._bump(account)
        when = self._clock() if internaldate is None else internaldate
        message = self._new_message(box, modseq, wanted, blob, when, sender, subject)
        self._publish(user, [Change(ChangeKind.EXISTS, box.name, modseq, (message.uid,))])
        return Appended(box.uidvalidity, message.uid, modseq)

    def _copy_into(
        self, account: _User, source: _Folder, uids: Collection[int], target: _Folder, modseq: int
    ) -> list[tuple[_Message, _Message]]:
        pairs = []
        for uid in sorted(set(uids)):
            message = source.live.get(uid)
            if message is None:
                continue
            copy = self._new_message(
                target,
                modseq,
                message.flags,
                message.blob,
                message.internaldate,
                message.sender,
                message.subject,
            )
            pairs.append((message, copy))
        return pairs

    async def copy(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        account = self._user(user)
        src, dst = self._folder(account, source), self._folder(account, target)
        if not any(uid in src.live for uid in uids):
            return Copied(dst.uidvalidity, (), account.modseq)
        modseq = self._bump(account)
        pairs = self._copy_into(account, src, uids, dst, modseq)
        new = tuple(c.uid for _, c in pairs)
        self._publish(user, [Change(ChangeKind.EXISTS, dst.name, modseq, new)])
        return Copied(dst.uidvalidity, tuple((m.uid, c.uid) for m, c in pairs), modseq)

    async def move(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        account = self._user(user)
        src, dst = self._folder(account, source), self._folder(account, target)
        if not any(uid in src.live for uid in uids):
            return Copied(dst.uidvalidity, (), account.modseq)
        modseq = self._bump(account)
        pairs = self._copy_into(account, src, uids, dst, modseq)
        gone = tuple(m.uid for m, _ in pairs)
        for uid in gone:
            del src.live[uid]
            src.expunged[uid] = modseq
        src.highest_modseq = modseq
        self._publish(
            user,
            [
                Change(ChangeKind.EXISTS, dst.name, modseq, tuple(c.uid for _, c in pairs)),
                Change(ChangeKind.EXPUNGE, src.name, modseq, gone),
            ],
        )
        return Copied(dst.uidvalidity, tuple((m.uid, c.uid) for m, c in pairs), modseq)

    def _expunge(self, user: str, box: _Folder, uids: list[int]) -> list[int]:
        account = self._user(user)
        if not uids:
            return []
        modseq = self._bump(account)
        now = self._clock()
        for uid in uids:
            message = box.live.pop(uid)
            message.deleted_at = now
            account.deleted[message.id] = (box, message)
            box.expunged[uid] = modseq
        box.highest_modseq = modseq
        self._publish(user, [Change(ChangeKind.EXPUNGE, box.name, modseq, tuple(uids))])
        return uids

    async def expunge(
        self, user: str, folder: str, uids: Collection[int] | None = None
    ) -> list[int]:
        box = self._folder(self._user(user), folder)
        chosen = box.live.keys() if uids is None else set(uids) & box.live.keys()
        return self._expunge(user, box, sorted(u for u in chosen if DELETED in box.live[u].flags))

    async def remove(self, user: str, folder: str, uids: Collection[int]) -> list[int]:
        box = self._folder(self._user(user), folder)
        return self._expunge(user, box, sorted(set(uids) & box.live.keys()))

    async def usage(self, user: str) -> Usage:
        account = self._user(user)
        live = [m for f in account.folders.values() for m in f.live.values()]
        return Usage(len(live), sum(m.blob.size for m in live))

    # ------------------------------------------------------------------ deleted mail

    async def deleted(self, user: str) -> list[DeletedMessage]:
        account = self._user(user)
        found = []
        for folder, m in account.deleted.values():
            assert m.deleted_at is not None
            found.append(
                DeletedMessage(
                    m.id,
                    folder.name,
                    m.uid,
                    m.blob.size,
                    m.internaldate,
                    m.deleted_at,
                    m.sender,
                    m.subject,
                    m.blob.blob_id,
                )
            )
        return sorted(found, key=lambda d: (d.deleted_at, d.id))

    async def undelete(
        self, user: str, ids: Collection[int] | None = None, since: float | None = None
    ) -> int:
        account = self._user(user)
        chosen = [
            key
            for key, (_, m) in sorted(account.deleted.items())
            if (ids is None or key in ids)
            and (since is None or (m.deleted_at is not None and m.deleted_at >= since))
        ]
        if not chosen:
            return 0
        modseq = self._bump(account)
        by_folder: dict[str, list[int]] = {}
        for key in chosen:
            old_folder, message = account.deleted.pop(key)
            folder = account.folders.get(old_folder.name)
            if folder is not old_folder:  # deleted (and maybe re-created) since: a live one
                folder = folder or self._make_folder(account, old_folder.name, None)
            message.deleted_at = None
            message.uid = folder.uidnext
            message.modseq = modseq
            folder.uidnext += 1
            folder.live[message.uid] = message
            folder.highest_modseq = modseq
            by_folder.setdefault(folder.name, []).append(message.uid)
        self._publish(
            user,
            [Change(ChangeKind.EXISTS, name, modseq, tuple(u)) for name, u in by_folder.items()],
        )
        return len(chosen)

    async def purge_deleted(self, older_than: float) -> int:
        count = 0
        for account in self._users.values():
            for key, (_, m) in list(account.deleted.items()):
                if m.deleted_at is not None and m.deleted_at < older_than:
                    del account.deleted[key]
                    count += 1
        return count

    # ------------------------------------------------------------------ changes

    async def highest_modseq(self, user: str) -> int:
        return self._user(user).modseq

    async def wait_changes(self, user: str, since: int, timeout: float) -> list[Change]:
        account = self._user(user)

        async def current() -> int:
            return account.modseq

        return await self.hub.wait(user.lower(), since, timeout, current)


if TYPE_CHECKING:  # mypy checks that this class is a Mailboxes
    _IS_MAILBOXES: Mailboxes = MemoryMailboxes()
