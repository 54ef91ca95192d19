"""The IMAP data model (issue 14 item 2): folders, messages, flags, MODSEQ and a change feed.

``Mailboxes`` is one small async interface in the domain's own words; a backend (the in-memory
one in ``memory_mailboxes``, SQLite, later PostgreSQL) implements it and passes the contract
suite in ``tests/store/contract/test_mailboxes_contract.py``. IMAP sessions, POP3 and the
``todoku mailbox`` commands use only this.

The model, and the invariants every backend keeps:

- A *user* is a local address (compared lower-cased). Each user has folders named by paths
  with ``/`` as the hierarchy delimiter (``Archive/2026``). ``INBOX`` is matched case-
  insensitively (RFC 9051 §5.1), also as the first level of a path (``inbox/x`` is ``INBOX/x``);
  it always exists and cannot be deleted. Names are Unicode (the IMAP layer converts modified
  UTF-7), bounded (``MAX_NAME_LENGTH``, ``MAX_DEPTH``), without control characters, without the
  LIST wildcards ``*`` and ``%``, and without empty levels.
- Each folder has a UIDVALIDITY and a UIDNEXT. A UID is given once in a folder and never again
  for the same UIDVALIDITY (RFC 9051 §2.3.1.1); a new folder (also one re-created under a name
  that existed before) gets a UIDVALIDITY the user's folders never had. A rename keeps it.
- MODSEQ (RFC 7162) is one counter per user: every operation that changes something takes the
  next value, and every message and expunged UID it touched carries that value; a folder's
  ``highest_modseq`` is the latest value of any change in it. Values only grow.
- Flags are a ``frozenset[str]``: the system flags written as ``SYSTEM_FLAGS`` spells them
  (``\\Seen`` ...; whatever case a client used) and keywords as given. ``\\Recent`` is not
  stored: it is a property of a session, not of a message.
- Expunged mail is not gone: it stays recoverable (``deleted``/``undelete``) until
  ``purge_deleted`` after ``retention.deleted``, the same for POP3 deletions (``remove``), IMAP
  expunges and the messages of a deleted folder. An undeleted message goes back into its folder
  (a new one of the same name if the old was deleted) under a new UID, so clients fetch it again.
  Every expunged UID stays known with its MODSEQ (``vanished``) for QRESYNC's VANISHED.
- Message content is a blob the caller stored first (``Blobs``); this interface names it by id
  (``BlobRef``) and never reads it. COPY shares the blob.
- Changes are announced after they are durable, to every waiter in this process
  (``wait_changes``). A change made by another process (a CLI command, another node) is seen
  when the waiter next looks (at its timeout at the latest) as a ``RESYNC``. Changes are hints:
  a session brings its view up to date with ``messages(changed_since=...)`` and ``vanished``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class SpecialUse(StrEnum):
    """RFC 6154 special-use attributes, spelled as LIST shows them."""

    ALL = "\\All"
    ARCHIVE = "\\Archive"
    DRAFTS = "\\Drafts"
    FLAGGED = "\\Flagged"
    JUNK = "\\Junk"
    SENT = "\\Sent"
    TRASH = "\\Trash"


INBOX = "INBOX"
DELIMITER = "/"

# The folders a user gets at the first login (ensure_defaults), with their roles.
DEFAULT_FOLDERS: tuple[tuple[str, SpecialUse | None], ...] = (
    (INBOX, None),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
SYSTEM_FLAGS = (SEEN, ANSWERED, FLAGGED, DELETED, DRAFT)
_SYSTEM_BY_LOWER = {flag.lower(): flag for flag in SYSTEM_FLAGS}

MAX_NAME_LENGTH = 255  # characters of a whole folder path
MAX_DEPTH = 16  # levels of a folder path
MAX_FLAG_LENGTH = 128  # characters of one keyword
MAX_KEYWORDS = 64  # distinct keywords on one message


# ---------------------------------------------------------------------------- errors


class MailboxError(Exception):
    """A request the store refuses; the text says why, for the user (IMAP NO)."""


class FolderNotFound(MailboxError):
    pass


class FolderExists(MailboxError):
    pass


class FolderHasChildren(MailboxError):
    """DELETE of a folder that has sub-folders: delete those first (as Dovecot answers)."""


class BadFolderName(MailboxError):
    pass


class InboxProtected(MailboxError):
    """INBOX cannot be deleted (RFC 9051 §6.3.5)."""


class BadFlag(MailboxError):
    pass


# ---------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class Folder:
    """One folder and its STATUS items (RFC 9051 §6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE)."""

    name: str
    special_use: SpecialUse | None
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    subscribed: bool
    messages: int
    unseen: int
    size: int  # octets of its messages


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Content already stored (and durable) in the blob store: its id, size and SHA-256."""

    blob_id: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What IMAP keeps per message in a folder; the content is read through ``blob_id``."""

    uid: int
    modseq: int
    flags: frozenset[str]
    size: int
    internaldate: float  # seconds since the epoch
    blob_id: str


@dataclass(frozen=True, slots=True)
class DeletedMessage:
    """An expunged (or POP3-deleted) message that ``undelete`` can still bring back."""

    id: int  # the key for ``undelete``
    folder: str
    uid: int  # the UID it had before it was expunged
    size: int
    internaldate: float
    deleted_at: float
    sender: str
    subject: str
    blob_id: str


class StoreMode(StrEnum):
    ADD = "+"
    REMOVE = "-"
    REPLACE = ""


@dataclass(frozen=True, slots=True)
class FlagsStored:
    """The outcome of ``store_flags``: the messages whose flags changed (with their new MODSEQ),
    and, with UNCHANGEDSINCE, the UIDs left alone because they changed after it (RFC 7162 §3.1.3
    MODIFIED)."""

    changed: tuple[MessageInfo, ...]
    failed: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Appended:
    """UIDPLUS APPENDUID (RFC 4315): the target's UIDVALIDITY and the new UID."""

    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class Copied:
    """UIDPLUS COPYUID: the target's UIDVALIDITY and (source UID, target UID) pairs in source UID
    order. For a move, ``modseq`` is also the MODSEQ of the source's expunge."""

    uidvalidity: int
    uids: tuple[tuple[int, int], ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Quota counters (RFC 9208 STORAGE and MESSAGE): live mail in every folder."""

    messages: int
    octets: int


class ChangeKind(StrEnum):
    EXISTS = "exists"  # new messages (delivered, appended, copied, moved or undeleted in)
    EXPUNGE = "expunge"  # messages gone from the folder (uids)
    FLAGS = "flags"  # flags of existing messages changed
    FOLDER_CREATED = "folder-created"
    FOLDER_DELETED = "folder-deleted"
    FOLDER_RENAMED = "folder-renamed"  # folder is the new name, previous_name the old one
    FOLDER_SUBSCRIBED = "folder-subscribed"  # subscription set or cleared
    RESYNC = "resync"  # something changed that this process did not see: re-read everything


@dataclass(frozen=True, slots=True)
class Change:
    """One event of the change feed. ``folder`` is None only for RESYNC."""

    kind: ChangeKind
    folder: str | None
    modseq: int
    uids: tuple[int, ...] = ()
    previous_name: str | None = None


# ---------------------------------------------------------------------------- the interface


class Mailboxes(Protocol):
    """Folders, messages, flags, MODSEQ and changes of local users (module docstring)."""

    # folders
    async def ensure_defaults(self, user: str) -> None:
        """INBOX always; the other ``DEFAULT_FOLDERS`` (subscribed, with their roles) once per
        user, at the first login: a folder the user deleted later is not brought back."""
        ...

    async def folders(self, user: str) -> list[Folder]:
        """Every folder, by name."""
        ...

    async def folder(self, user: str, name: str) -> Folder:
        """STATUS of one folder; FolderNotFound."""
        ...

    async def create_folder(
        self, user: str, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        """A new empty folder (BadFolderName, FolderExists). Missing parents are created too
        (RFC 9051 §6.3.4)."""
        ...

    async def rename_folder(self, user: str, old: str, new: str) -> None:
        """Rename with its sub-folders, UIDs and UIDVALIDITY kept. Renaming INBOX moves its
        messages into the new folder and leaves INBOX empty (RFC 9051 §6.3.6)."""
        ...

    async def delete_folder(self, user: str, name: str) -> None:
        """Delete an empty-of-children folder; its messages become recoverable deleted mail.
        InboxProtected, FolderHasChildren, FolderNotFound."""
        ...

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None: ...

    # messages
    async def messages(
        self, user: str, folder: str, changed_since: int | None = None
    ) -> list[MessageInfo]:
        """The folder's messages in UID order; with ``changed_since``, only those whose MODSEQ is
        greater (CONDSTORE CHANGEDSINCE, QRESYNC)."""
        ...

    async def vanished(self, user: str, folder: str, since: int) -> list[int]:
        """UIDs expunged from the folder with a MODSEQ greater than ``since``, ascending
        (QRESYNC VANISHED (EARLIER), RFC 7162 §3.2.5)."""
        ...

    async def store_flags(
        self,
        user: str,
        folder: str,
        uids: Collection[int],
        mode: StoreMode,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> FlagsStored:
        """STORE: add, remove or replace flags. UIDs not in the folder are ignored. Messages
        whose flags stay the same keep their MODSEQ; the others share one new MODSEQ."""
        ...

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
        """APPEND stored content (``internaldate`` defaults to now; sender and subject are what
        ``deleted`` shows)."""
        ...

    async def copy(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        """COPY with flags kept; UIDs not in the source are ignored."""
        ...

    async def move(self, user: str, source: str, uids: Collection[int], target: str) -> Copied:
        """MOVE (RFC 6851): copy then expunge the source messages, as one step (a crash leaves
        either both folders as before or the move done). The moved mail is not kept as deleted
        mail: it lives on in the target."""
        ...

    async def expunge(
        self, user: str, folder: str, uids: Collection[int] | None = None
    ) -> list[int]:
        """EXPUNGE (or UID EXPUNGE with ``uids``): the messages flagged ``\\Deleted`` go to the
        recoverable deleted mail. Returns their UIDs, ascending."""
        ...

    async def remove(self, user: str, folder: str, uids: Collection[int]) -> list[int]:
        """Expunge exactly these messages, whatever their flags (POP3 DELE then QUIT)."""
        ...

    async def usage(self, user: str) -> Usage: ...

    # recoverable deleted mail (todoku mailbox deleted/undelete; retention.deleted)
    async def deleted(self, user: str) -> list[DeletedMessage]:
        """Deleted mail still recoverable, oldest deletion first."""
        ...

    async def undelete(
        self, user: str, ids: Collection[int] | None = None, since: float | None = None
    ) -> int:
        """Bring back these (or all, or those deleted at or after ``since``) into their folders
        under new UIDs; returns how many."""
        ...

    async def purge_deleted(self, older_than: float) -> int:
        """Forget mail deleted before ``older_than`` (all users); its content goes when nothing
        else refers to it. Returns how many messages."""
        ...

    # changes
    async def highest_modseq(self, user: str) -> int:
        """The user's latest MODSEQ: the token to start ``wait_changes`` from."""
        ...

    async def wait_changes(self, user: str, since: int, timeout: float) -> list[Change]:
        """The user's changes with a MODSEQ greater than ``since``, oldest first; waits up to
        ``timeout`` seconds for the first one and returns [] when none came."""
        ...


# ---------------------------------------------------------------------------- helpers


def normalize_name(name: str) -> str:
    """A folder path as stored: INBOX (any case) as the first level spelled ``INBOX``;
    BadFolderName for a name the store does not take."""
    if not name:
        raise BadFolderName("a folder name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise BadFolderName(f"a folder name is at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "*" in name or "%" in name:
        raise BadFolderName("a folder name cannot contain control characters, * or %")
    levels = name.split(DELIMITER)
    if any(level == "" for level in levels):
        raise BadFolderName(
            f"a folder name cannot have an empty level (a leading, trailing or double {DELIMITER})"
        )
    if len(levels) > MAX_DEPTH:
        raise BadFolderName(f"folders nest at most {MAX_DEPTH} levels deep")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return DELIMITER.join(levels)


def parents_of(name: str) -> list[str]:
    """The superior names of a path, outermost first: ``a/b/c`` → ``a``, ``a/b``."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def is_inside(name: str, ancestor: str) -> bool:
    return name.startswith(ancestor + DELIMITER)


def normalize_flags(flags: Iterable[str]) -> frozenset[str]:
    """Flags as stored: system flags in their canonical spelling, ``\\Recent`` dropped, keywords
    as given (bounded); BadFlag for an unknown backslash flag or a keyword the store refuses."""
    out: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            if flag.lower() == "\\recent":
                continue
            canonical = _SYSTEM_BY_LOWER.get(flag.lower())
            if canonical is None:
                raise BadFlag(f"{flag} is not a flag a message can have")
            out.add(canonical)
            continue
        if (
            not flag
            or len(flag) > MAX_FLAG_LENGTH
            or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in flag)
        ):
            raise BadFlag(f"{flag!r} is not a keyword this store keeps")
        out.add(flag)
    if len(out) > MAX_KEYWORDS + len(SYSTEM_FLAGS):
        raise BadFlag(f"at most {MAX_KEYWORDS} keywords on one message")
    return frozenset(out)


def apply_flags(current: frozenset[str], mode: StoreMode, flags: frozenset[str]) -> frozenset[str]:
    if mode is StoreMode.ADD:
        return current | flags
    if mode is StoreMode.REMOVE:
        return current - flags
    return flags


# ---------------------------------------------------------------------------- change feed


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()


class ChangeHub:
    """The in-process half of the change feed, shared by backends: changes are published (from
    any thread) after they are durable, kept per user in a bounded window, and every waiter on
    that user (on any event loop) is woken at once.

    A waiter asks for the changes after its token; when the window does not hold every MODSEQ
    between the token and the user's current one (another process changed the mail, the window
    overflowed, the process restarted), it gets one RESYNC instead of a partial list."""

    def __init__(self, window: int = 1024) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._changes: dict[str, deque[Change]] = {}
        self._waiters: dict[str, set[_Waiter]] = {}

    def publish(self, user: str, changes: Sequence[Change]) -> None:
        if not changes:
            return
        with self._lock:
            kept = self._changes.setdefault(user, deque(maxlen=self._window))
            kept.extend(changes)
            waiters = list(self._waiters.get(user, ()))
        for waiter in waiters:
            try:
                waiter.loop.call_soon_threadsafe(waiter.event.set)
            except RuntimeError:  # that loop is closed: its session is gone
                pass

    def since(self, user: str, since: int, current: int) -> list[Change]:
        """The changes after ``since`` up to ``current``; [RESYNC] when some are not known here."""
        if current <= since:
            return []
        with self._lock:
            found = [c for c in self._changes.get(user, ()) if since < c.modseq <= current]
        if {c.modseq for c in found} != set(range(since + 1, current + 1)):
            return [Change(ChangeKind.RESYNC, None, current)]
        return found

    async def wait(
        self, user: str, since: int, timeout: float, current: Callable[[], Awaitable[int]]
    ) -> list[Change]:
        """``since`` as in ``Mailboxes.wait_changes``; ``current()`` reads the user's MODSEQ from
        the backend (so that other processes' changes are seen, at the timeout at least)."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            self._waiters.setdefault(user, set()).add(waiter)
        try:
            found = self.since(user, since, await current())
            if found:
                return found
            try:
                async with asyncio.timeout(timeout):
                    await waiter.event.wait()
            except TimeoutError:
                pass
            return self.since(user, since, await current())
        finally:
            with self._lock:
                waiting = self._waiters.get(user)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[user]
