"""The IMAP adapter: carries bytes between a socket and ``proto.imap.server``, and executes the
commands against the mail store (``Mailboxes``, ``Blobs``, ``Directory``), awaiting it.

One ``ImapSession`` per connection. Invariants:
- Every store call is awaited; password hashing, reading message files and parsing MIME run in
  worker threads: the event loop, which every session shares, never waits for a disk or a hash,
  and untrusted headers are parsed off it.
- A message's MIME structure (ENVELOPE, BODYSTRUCTURE, part offsets) is parsed once: at APPEND,
  or the first time a FETCH or SEARCH needs it, and kept by blob id (content never changes) in
  ``StructureCache``, shared by all sessions and bounded.
- The session's view of its selected folder (sequence numbers, flags) changes only where the
  client may be told: after each command (expunges only after NOOP, IDLE, EXPUNGE, CLOSE, MOVE,
  SELECT, APPEND, COPY and the commands that are not FETCH, STORE or SEARCH: RFC 9051 §7.5.1),
  and during IDLE, woken by the store's change feed (``wait_changes``), so a delivery or another
  session's change reaches an IDLE client at once.
- Login failures count in the same ``AuthThrottle`` as SMTP AUTH and POP3 (delays, lockout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from todoku.config import Config
from todoku.net import tls as tls_util
from todoku.net.idle import Idle
from todoku.net.link import ConnectionLimits, Refusal, SessionLink
from todoku.policy.auth import AuthThrottle, verify_password
from todoku.proto.imap import commands as cmds
from todoku.proto.imap import fetch as fetching
from todoku.proto.imap import mime
from todoku.proto.imap import search as searching
from todoku.proto.imap.server import (
    NEED_DATA,
    PAUSED,
    Closed,
    CommandReceived,
    IdleDone,
    LoginRequest,
    ServerConnection,
    SessionSettings,
    StartTLS,
)
from todoku.proto.imap.syntax import SequenceSet, astring_out, encode_mailbox, format_sequence
from todoku.proto.imap.view import FolderView
from todoku.store.api import SpooledBlob
from todoku.store.content import Blobs
from todoku.store.directory import Directory
from todoku.store.mailboxes import (
    DELETED,
    DELIMITER,
    INBOX,
    SEEN,
    BadFlag,
    BadFolderName,
    BlobRef,
    ChangeKind,
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderNotFound,
    InboxProtected,
    MailboxError,
    Mailboxes,
    MessageInfo,
    SpecialUse,
    StoreMode,
)

if TYPE_CHECKING:
    from todoku.net.counters import SessionCounters

log = logging.getLogger("todoku.imap")

BUFFER_LIMIT = 256 * 1024  # unread octets from a client before reading from it pauses
# RFC 9051 §5.4: an inactivity autologout timer of at least 30 minutes (IDLE included).
COMMAND_TIMEOUT = 30 * 60.0
SEND_TIMEOUT = 600.0
IDLE_POLL = 60.0  # the change feed is asked again at least this often during IDLE
FLUSH_AT = 256 * 1024  # a long FETCH response goes out in pieces of about this size
READ_BATCH = 64  # messages read per worker-thread hop in FETCH and SEARCH
STRUCTURES = 20_000  # MIME structures kept in memory (most are a few hundred octets)

_SYSTEM_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
_ROLE_BY_NAME = {role.value.lower(): role for role in SpecialUse}


class StructureCache:
    """MIME structures by blob id, least recently used first out."""

    def __init__(self, size: int = STRUCTURES) -> None:
        self.size = size
        self._kept: OrderedDict[str, mime.Structure] = OrderedDict()

    def get(self, blob_id: str) -> mime.Structure | None:
        found = self._kept.get(blob_id)
        if found is not None:
            self._kept.move_to_end(blob_id)
        return found

    def put(self, blob_id: str, structure: mime.Structure) -> None:
        self._kept[blob_id] = structure
        self._kept.move_to_end(blob_id)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


@dataclass
class ImapContext:
    """What every IMAP session of this server shares."""

    config: Config
    mailboxes: Mailboxes
    blobs: Blobs
    directory: Directory
    throttle: AuthThrottle  # the same object SMTP AUTH and POP3 use
    tls_context: ssl.SSLContext | None
    stopping: bool = False
    sessions: set[ImapSession] = field(default_factory=set)
    next_session: int = 0
    connections: ConnectionLimits | None = None
    metrics: SessionCounters | None = None  # counters for /metrics (web.metrics), from app.py
    structures: StructureCache = field(default_factory=StructureCache)

    def session_id(self) -> str:
        self.next_session += 1
        return f"I{self.next_session:05X}"


def settings_for(service: str, config: Config, loopback: bool, tls_ready: bool) -> SessionSettings:
    """``imap`` offers STARTTLS (no login before it); ``imaps`` is TLS from the first byte."""
    plaintext_ok = config.allow_plaintext_auth_on_loopback and loopback
    limit = config.max_message_size
    if service == "imap":
        return SessionSettings(
            hostname=config.hostname,
            tls_available=tls_ready,
            plaintext_login_allowed=plaintext_ok,
            append_limit=limit,
        )
    if service == "imaps":
        return SessionSettings(hostname=config.hostname, tls_active=True, append_limit=limit)
    raise ValueError(service)


def _read_messages(
    blobs: Blobs, wanted: Sequence[tuple[str, bool]], cached: dict[str, mime.Structure]
) -> list[tuple[bytes | None, mime.Structure | None]]:
    """In a worker thread: each (blob id, content wanted) read, and parsed unless ``cached``."""
    out: list[tuple[bytes | None, mime.Structure | None]] = []
    for blob_id, keep_content in wanted:
        try:
            with blobs.open_blocking(blob_id) as handle:
                content = handle.read()
        except (OSError, ValueError):
            out.append((None, None))
            continue
        structure = cached.get(blob_id) or mime.parse(content)
        out.append((content if keep_content else None, structure))
    return out


def _list_matches(name: str, pattern: str) -> bool:
    """LIST's wildcards: ``*`` matches anything, ``%`` anything but the delimiter."""
    regex = "".join(
        ".*" if c == "*" else f"[^{re.escape(DELIMITER)}]*" if c == "%" else re.escape(c)
        for c in pattern
    )
    if name.upper().startswith(INBOX) and pattern.upper().startswith(INBOX):
        name, pattern_re = INBOX + name[len(INBOX) :], INBOX + regex[len(INBOX) :]
        return re.fullmatch(pattern_re, name) is not None
    return re.fullmatch(regex, name) is not None


class ImapSession:
    def __init__(
        self, ctx: ImapContext, service: str, settings: SessionSettings, link: ImapLink
    ) -> None:
        self.ctx = ctx
        self.service = service
        self.link = link
        self.cid = ctx.session_id()
        peer = cast(tuple[str, int], link.extra("peername") or ("unknown", 0))
        self.client_ip = str(peer[0])
        self.conn = ServerConnection(settings)
        self.user: str | None = None
        self.folder: str | None = None  # the selected folder
        self.view: FolderView | None = None
        self.infos: dict[int, MessageInfo] = {}  # the selected folder's messages by UID
        self.waiting_for_command = False
        self.task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None

    def _log(self, message: str) -> None:
        log.info("%s[%s]: %s", self.service, self.cid, message)

    def stopping(self) -> bool:
        return self.ctx.stopping

    @property
    def mailboxes(self) -> Mailboxes:
        return self.ctx.mailboxes

    async def run(self) -> None:
        self.task = asyncio.current_task()
        self.ctx.sessions.add(self)
        self._log(f"connect from [{self.client_ip}]")
        try:
            await self._loop()
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            self._log(f"lost connection from [{self.client_ip}]: {type(exc).__name__}")
        except Exception:
            log.exception("%s[%s]: session failed", self.service, self.cid)
        finally:
            await self._stop_idle()
            self.ctx.sessions.discard(self)
            self.link.close()
            self._log(f"disconnect from [{self.client_ip}]")

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.link.write(data):
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.link.writable()

    async def _read(self) -> None:
        await self._flush()
        data = await self.link.read()
        if data is Idle.STOPPING:
            self.conn.shutdown("Server shutting down")
        elif data is Idle.TIMED_OUT:
            self.conn.shutdown("Autologout; idle for too long")
        else:
            self.conn.receive_data(data)

    async def _loop(self) -> None:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                await self._read()
            elif isinstance(event, CommandReceived):
                await self._execute(event.tag, event.command)
            elif isinstance(event, LoginRequest):
                await self._on_login(event)
            elif isinstance(event, IdleDone):
                await self._stop_idle()
                await self._sync(expunges=True)
                conn.complete("OK", "IDLE terminated")
            elif isinstance(event, StartTLS):
                await self._start_tls()
            elif isinstance(event, Closed) or event is PAUSED:
                await self._flush()
                return

    async def _start_tls(self) -> None:
        await self._flush()
        assert self.ctx.tls_context is not None
        await self.link.start_tls(self.ctx.tls_context)
        self.conn.tls_started()
        self._log(f"STARTTLS: {tls_util.describe(self.link.extra('ssl_object'))}")  # type: ignore[arg-type]

    # ----------------------------------------------------------------- login

    async def _check_credentials(self, username: str, password: str) -> bool:
        user = await self.ctx.directory.get_user(username)
        hashed = user.password_hash if user else None
        return await asyncio.to_thread(verify_password, hashed, password)

    async def _on_login(self, event: LoginRequest) -> None:
        throttle = self.ctx.throttle
        if throttle.locked(self.client_ip):
            self._log(f"login refused: [{self.client_ip}] is locked out after repeated failures")
            self.conn.complete("NO", "Too many failed logins; try again later", "UNAVAILABLE")
            self.conn.shutdown("Too many failed logins")
            return
        username = event.username.strip().lower()
        if event.authzid and event.authzid.lower() != username:
            good = False
        else:
            good = await self._check_credentials(username, event.password)
        if not good:
            delay = throttle.failure(self.client_ip)
            self._log(f"login {event.mechanism} user={username} failed")
            if self.ctx.metrics is not None:
                self.ctx.metrics.auth_failed(self.service)
            if throttle.locked(self.client_ip):
                self.conn.complete("NO", "Too many failed logins; try again later", "UNAVAILABLE")
                self.conn.shutdown("Too many failed logins")
                return
            if delay:
                await asyncio.sleep(delay)
            self.conn.complete("NO", "Wrong user name or password", "AUTHENTICATIONFAILED")
            return
        throttle.success(self.client_ip)
        try:
            await self.mailboxes.ensure_defaults(username)
        except Exception:
            log.exception("%s[%s]: cannot open the folders of %s", self.service, self.cid, username)
            self.conn.complete("NO", "The mailbox is not available now", "UNAVAILABLE")
            return
        self.user = username
        self.conn.accept_login(username)
        self._log(f"login {event.mechanism} user={username} ok")

    # ----------------------------------------------------------------- commands

    async def _execute(self, tag: str, command: cmds.Command) -> None:
        name = type(command).__name__
        try:
            handler = getattr(self, f"_do_{name.lower()}")
            await handler(tag, command)
        except FolderNotFound as exc:
            self.conn.complete("NO", str(exc) or "No such mailbox", "NONEXISTENT")
        except (BadFolderName, BadFlag) as exc:
            self.conn.complete("NO", str(exc), "CANNOT")
        except MailboxError as exc:
            self.conn.complete("NO", str(exc), "CANNOT")
        except (ConnectionError, ssl.SSLError, TimeoutError):
            raise
        except Exception:
            # A fault of ours (a store error, an unreadable file): the client hears NO and the
            # session goes on; the log has the traceback.
            log.exception("%s[%s]: %s failed", self.service, self.cid, name)
            if self.conn.pending:
                self.conn.complete("NO", "Server error; try again later", "SERVERBUG")
        await self._flush()

    def _user(self) -> str:
        assert self.user is not None
        return self.user

    async def _do_noop(self, tag: str, command: cmds.Noop) -> None:
        await self._sync(expunges=True)
        self.conn.complete("OK", f"{'CHECK' if command.check else 'NOOP'} completed")

    # --- the selected folder

    async def _do_select(self, tag: str, command: cmds.Select) -> None:
        self.folder = None
        self.view = None
        self.infos = {}
        user = self._user()
        try:
            folder = await self.mailboxes.folder(user, command.mailbox)
        except FolderNotFound:
            self.conn.unselected()
            self.conn.complete("NO", f"No mailbox named {command.mailbox}", "NONEXISTENT")
            return
        messages = await self.mailboxes.messages(user, folder.name)
        self.infos = {m.uid: m for m in messages}
        self.view = view = FolderView(messages, folder.highest_modseq)
        self.folder = folder.name
        conn = self.conn
        out = conn.untagged
        out(b"* " + b"%d EXISTS\r\n" % view.exists)
        if not conn.rev2:
            out(b"* 0 RECENT\r\n")
            first_unseen = next((i for i, m in enumerate(messages, 1) if SEEN not in m.flags), None)
            if first_unseen is not None:
                out(b"* OK [UNSEEN %d] First unseen message\r\n" % first_unseen)
        out(b"* FLAGS " + _SYSTEM_FLAGS + b"\r\n")
        if command.read_only:
            out(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
        else:
            out(b"* OK [PERMANENTFLAGS " + _SYSTEM_FLAGS[:-1] + b" \\*)] Flags permitted\r\n")
        out(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % folder.uidvalidity)
        out(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % folder.uidnext)
        if conn.condstore or command.condstore:
            out(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % max(folder.highest_modseq, 1))
        if conn.rev2:
            out(b'* LIST () "/" ' + self._name_out(folder.name) + b"\r\n")
        if command.qresync is not None:
            await self._qresync(folder, command.qresync)
        conn.selected(command.read_only)
        mode = "READ-ONLY" if command.read_only else "READ-WRITE"
        conn.complete("OK", f"{'EXAMINE' if command.read_only else 'SELECT'} completed", mode)

    async def _qresync(
        self,
        folder: Folder,
        params: tuple[int, int, SequenceSet | None, tuple[SequenceSet, SequenceSet] | None],
    ) -> None:
        uidvalidity, modseq, known, _match = params
        if uidvalidity != folder.uidvalidity:
            return  # RFC 7162 §3.2.5.2: a different UIDVALIDITY means a full resync anyway
        user = self._user()
        vanished = await self.mailboxes.vanished(user, folder.name, modseq)
        if known is not None and vanished:
            vanished = known.members(vanished, folder.uidnext)
        if vanished:
            self.conn.untagged(
                b"* VANISHED (EARLIER) " + format_sequence(vanished).encode() + b"\r\n"
            )
        view = self.view
        assert view is not None
        for m in await self.mailboxes.messages(user, folder.name, changed_since=modseq):
            seq = view.seq_of(m.uid)
            if seq is not None:
                self.conn.untagged(
                    b"* %d FETCH (UID %d FLAGS " % (seq, m.uid)
                    + fetching.format_flags(m.flags)
                    + b" MODSEQ (%d))\r\n" % m.modseq
                )

    async def _do_close(self, tag: str, command: cmds.Close) -> None:
        if command.expunge and not self.conn.read_only and self.folder is not None:
            await self.mailboxes.expunge(self._user(), self.folder)
        self.folder = None
        self.view = None
        self.infos = {}
        self.conn.unselected()
        self.conn.complete("OK", f"{'CLOSE' if command.expunge else 'UNSELECT'} completed")

    async def _sync(self, *, expunges: bool, quiet: Sequence[int] = ()) -> None:
        """Bring the view up to date and tell the client what changed."""
        view, folder = self.view, self.folder
        if view is None or folder is None:
            return
        user = self._user()
        try:
            status = await self.mailboxes.folder(user, folder)
        except FolderNotFound:
            self.conn.shutdown("The selected mailbox was deleted or renamed")
            return
        if status.highest_modseq == view.highest_modseq and status.messages == view.exists:
            return
        messages = await self.mailboxes.messages(user, folder)
        current: Sequence[MessageInfo] = messages
        if not expunges:
            # Messages gone since the view was made stay in it until the client may be told.
            present = {m.uid for m in messages}
            ghosts = [self.infos[u] for u in view.uids if u not in present and u in self.infos]
            current = sorted([*messages, *ghosts], key=lambda m: m.uid)
        lines = view.update(
            current,
            status.highest_modseq if expunges else view.highest_modseq,
            vanished=self.conn.qresync,
            modseq=self.conn.condstore,
            quiet=quiet,
        )
        self.infos = {m.uid: m for m in current}
        for line in lines:
            self.conn.untagged(line)

    def _resolve(self, sequence: SequenceSet, uid: bool) -> list[tuple[int, int]] | None:
        view = self.view
        assert view is not None
        if not uid and not view.valid_sequence(sequence):
            return None
        return [(s, u) for s, u in view.resolve(sequence, uid) if u in self.infos]

    async def _load(
        self, uids: Sequence[int], content: bool, structure: bool
    ) -> dict[int, tuple[bytes | None, mime.Structure | None]]:
        """Content and/or structure of these messages, read in worker threads in batches."""
        found: dict[int, tuple[bytes | None, mime.Structure | None]] = {}
        cache = self.ctx.structures
        missing: list[int] = []
        for uid in uids:
            cached = cache.get(self.infos[uid].blob_id) if structure else None
            if content or (structure and cached is None):
                missing.append(uid)
            else:
                found[uid] = (None, cached)
        for start in range(0, len(missing), READ_BATCH):
            batch = missing[start : start + READ_BATCH]
            ids = [self.infos[u].blob_id for u in batch]
            known = {b: s for b in ids if (s := cache.get(b)) is not None}
            read = await asyncio.to_thread(
                _read_messages, self.ctx.blobs, [(b, content) for b in ids], known
            )
            for uid, blob_id, (data, parsed) in zip(batch, ids, read, strict=True):
                if parsed is not None:
                    cache.put(blob_id, parsed)
                found[uid] = (data, parsed)
        return found

    async def _do_fetch(self, tag: str, command: cmds.Fetch) -> None:
        targets = self._resolve(command.sequence, command.uid)
        if targets is None:
            self.conn.complete("BAD", "FETCH: no such message number (see EXISTS)")
            return
        items = list(command.items)
        if command.changed_since is not None:
            targets = [(s, u) for s, u in targets if self.infos[u].modseq > command.changed_since]
        user, folder = self._user(), self.folder
        assert folder is not None
        if command.vanished and command.changed_since is not None:
            gone = await self.mailboxes.vanished(user, folder, command.changed_since)
            wanted = command.sequence.members(gone, max(gone, default=0))
            if wanted:
                self.conn.untagged(
                    b"* VANISHED (EARLIER) " + format_sequence(wanted).encode() + b"\r\n"
                )
        if any(i.sets_seen for i in items) and not self.conn.read_only:
            unseen = [u for _, u in targets if SEEN not in self.infos[u].flags]
            if unseen:
                stored = await self.mailboxes.store_flags(
                    user, folder, unseen, StoreMode.ADD, [SEEN]
                )
                for m in stored.changed:
                    self.infos[m.uid] = m
                if not any(i.name == "FLAGS" for i in items):
                    items.append(fetching.Item("FLAGS"))
        if self.conn.condstore and not any(i.name == "MODSEQ" for i in items):
            items.append(fetching.Item("MODSEQ"))
        need_content = fetching.needs_content(items)
        need_structure = fetching.needs_structure(items)
        for start in range(0, len(targets), READ_BATCH):
            batch = targets[start : start + READ_BATCH]
            loaded: dict[int, tuple[bytes | None, mime.Structure | None]] = {}
            if need_content or need_structure:
                loaded = await self._load([u for _, u in batch], need_content, need_structure)
            for seq, uid in batch:
                info = self.infos[uid]
                data, structure = loaded.get(uid, (None, None))
                if (need_content and data is None) or (need_structure and structure is None):
                    self._log(f"message {info.blob_id} of {user} unreadable")
                    continue
                message = fetching.Message(
                    seq, uid, info.flags, info.modseq, info.size, info.internaldate, structure, data
                )
                try:
                    self.conn.untagged(fetching.response(message, items))
                except fetching.UnknownTransferEncoding:
                    self.conn.complete("NO", "Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
                    return
            await self._flush()
        if self.view is not None:
            for m in self.infos.values():
                self.view.flags[m.uid] = m.flags
                self.view.modseqs[m.uid] = m.modseq
        await self._sync(expunges=False)
        self.conn.complete("OK", f"{'UID ' if command.uid else ''}FETCH completed")

    async def _do_store(self, tag: str, command: cmds.Store) -> None:
        if self.conn.read_only:
            self.conn.complete("NO", "The mailbox is open read-only (EXAMINE)", "READ-ONLY")
            return
        targets = self._resolve(command.sequence, command.uid)
        if targets is None:
            self.conn.complete("BAD", "STORE: no such message number (see EXISTS)")
            return
        user, folder = self._user(), self.folder
        assert folder is not None and self.view is not None
        mode = {"+": StoreMode.ADD, "-": StoreMode.REMOVE}.get(command.mode, StoreMode.REPLACE)
        stored = await self.mailboxes.store_flags(
            user, folder, [u for _, u in targets], mode, command.flags, command.unchanged_since
        )
        for m in stored.changed:
            self.infos[m.uid] = m
            self.view.flags[m.uid] = m.flags
            self.view.modseqs[m.uid] = m.modseq
        changed = {m.uid for m in stored.changed}
        failed = set(stored.failed)
        condstore = self.conn.condstore
        for seq, uid in targets:
            if uid in failed:
                continue
            info = self.infos[uid]
            if command.silent and not (condstore and uid in changed):
                continue
            parts = []
            if command.uid:
                parts.append(b"UID %d" % uid)
            if not command.silent:
                parts.append(b"FLAGS " + fetching.format_flags(info.flags))
            if condstore:
                parts.append(b"MODSEQ (%d)" % info.modseq)
            self.conn.untagged(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")
        await self._sync(expunges=False)
        if failed:
            numbers = (
                sorted(failed) if command.uid else sorted(s for s, u in targets if u in failed)
            )
            self.conn.complete(
                "OK", "Conditional STORE failed", f"MODIFIED {format_sequence(numbers)}"
            )
            return
        self.conn.complete("OK", f"{'UID ' if command.uid else ''}STORE completed")

    async def _do_search(self, tag: str, command: cmds.Search) -> None:
        view = self.view
        assert view is not None
        needs = command.key.needs()
        uids = [u for u in view.uids if u in self.infos]
        loaded: dict[int, tuple[bytes | None, mime.Structure | None]] = {}
        if needs:
            loaded = await self._load(uids, "content" in needs, True)
        candidates = []
        for seq, uid in enumerate(view.uids, 1):
            info = self.infos.get(uid)
            if info is None:
                continue
            data, structure = loaded.get(uid, (None, None))
            candidates.append(
                searching.Candidate(
                    seq, uid, info.flags, info.size, info.internaldate, info.modseq, structure, data
                )
            )
        largest_uid = view.uids[-1] if view.uids else 0
        found = searching.run(command.key, candidates, view.exists, largest_uid)
        numbers = [c.uid if command.uid else c.seq for c in found]
        modseq = max((c.modseq for c in found), default=0) if _uses_modseq(command.key) else None
        if command.returns is not None or self.conn.rev2:
            returns = command.returns or ()
            self.conn.untagged(searching.esearch(tag, command.uid, numbers, returns, modseq))
        else:
            line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
            if modseq is not None and numbers:
                line += b" (MODSEQ %d)" % modseq
            self.conn.untagged(line + b"\r\n")
        await self._sync(expunges=False)
        self.conn.complete("OK", f"{'UID ' if command.uid else ''}SEARCH completed")

    async def _do_copy(self, tag: str, command: cmds.Copy) -> None:
        verb = "MOVE" if command.move else "COPY"
        if command.move and self.conn.read_only:
            self.conn.complete("NO", "The mailbox is open read-only (EXAMINE)", "READ-ONLY")
            return
        targets = self._resolve(command.sequence, command.uid)
        if targets is None:
            self.conn.complete("BAD", f"{verb}: no such message number (see EXISTS)")
            return
        user, folder = self._user(), self.folder
        assert folder is not None
        try:
            await self.mailboxes.folder(user, command.mailbox)
        except FolderNotFound:
            self.conn.complete("NO", f"No mailbox named {command.mailbox}", "TRYCREATE")
            return
        if not targets:
            self.conn.complete("OK", f"{verb} completed (nothing to {verb.lower()})")
            return
        uids = [u for _, u in targets]
        if command.move:
            done = await self.mailboxes.move(user, folder, uids, command.mailbox)
        else:
            done = await self.mailboxes.copy(user, folder, uids, command.mailbox)
        code = None
        if done.uids:
            code = (
                f"COPYUID {done.uidvalidity} {format_sequence(s for s, _ in done.uids)}"
                f" {format_sequence(t for _, t in done.uids)}"
            )
            if not _ascending_pairs(done.uids):
                code = (
                    f"COPYUID {done.uidvalidity} "
                    + ",".join(str(s) for s, _ in done.uids)
                    + " "
                    + ",".join(str(t) for _, t in done.uids)
                )
        if command.move:
            if code:
                self.conn.untagged(f"* OK [{code}] Moved\r\n".encode())
            await self._sync(expunges=True)
            self.conn.complete("OK", "MOVE completed")
            return
        await self._sync(expunges=True)
        self.conn.complete("OK", "COPY completed", code)

    async def _do_expunge(self, tag: str, command: cmds.Expunge) -> None:
        if self.conn.read_only:
            self.conn.complete("NO", "The mailbox is open read-only (EXAMINE)", "READ-ONLY")
            return
        user, folder = self._user(), self.folder
        assert folder is not None and self.view is not None
        uids = None
        if command.uids is not None:
            uids = command.uids.members(self.view.uids, self.view.uids[-1] if self.view.uids else 0)
        await self.mailboxes.expunge(user, folder, uids)
        await self._sync(expunges=True)
        self.conn.complete("OK", f"{'UID ' if command.uids is not None else ''}EXPUNGE completed")

    # --- folders

    def _name_out(self, name: str) -> bytes:
        return astring_out(encode_mailbox(name, self.conn.utf8))

    async def _do_create(self, tag: str, command: cmds.Create) -> None:
        name = command.mailbox.rstrip(DELIMITER)
        role = None
        for use in command.special_use:
            role = _ROLE_BY_NAME.get(use.lower())
            if role is None or len(command.special_use) > 1:
                self.conn.complete("NO", f"Cannot give the role {use}", "USEATTR")
                return
        try:
            await self.mailboxes.create_folder(self._user(), name, role)
        except FolderExists:
            self.conn.complete("NO", f"{name} exists already", "ALREADYEXISTS")
            return
        self.conn.complete("OK", "CREATE completed")

    async def _do_delete(self, tag: str, command: cmds.Delete) -> None:
        try:
            await self.mailboxes.delete_folder(self._user(), command.mailbox)
        except InboxProtected:
            self.conn.complete("NO", "INBOX cannot be deleted", "CANNOT")
            return
        except FolderHasChildren:
            self.conn.complete("NO", "Delete the folders inside it first", "HASCHILDREN")
            return
        if self.folder == command.mailbox:
            self.conn.shutdown("The selected mailbox was deleted")
        self.conn.complete("OK", "DELETE completed")

    async def _do_rename(self, tag: str, command: cmds.Rename) -> None:
        try:
            await self.mailboxes.rename_folder(self._user(), command.old, command.new)
        except FolderExists:
            self.conn.complete("NO", f"{command.new} exists already", "ALREADYEXISTS")
            return
        self.conn.complete("OK", "RENAME completed")

    async def _do_subscribe(self, tag: str, command: cmds.Subscribe) -> None:
        await self.mailboxes.subscribe(self._user(), command.mailbox, command.subscribed)
        verb = "SUBSCRIBE" if command.subscribed else "UNSUBSCRIBE"
        self.conn.complete("OK", f"{verb} completed")

    async def _do_listmailboxes(self, tag: str, command: cmds.ListMailboxes) -> None:
        verb = "LSUB" if command.lsub else "LIST"
        if command.patterns == ("",) and not command.extended:
            # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root.
            self.conn.untagged(f'* {verb} (\\Noselect) "/" ""\r\n'.encode())
            self.conn.complete("OK", f"{verb} completed")
            return
        folders = await self.mailboxes.folders(self._user())
        names = {f.name for f in folders}
        for folder in folders:
            full = [command.reference + p for p in command.patterns if p]
            if not any(_list_matches(folder.name, pattern) for pattern in full):
                continue
            if command.subscribed_only and not folder.subscribed:
                continue
            if command.special_use_only and folder.special_use is None:
                continue
            children = any(n.startswith(folder.name + DELIMITER) for n in names)
            attrs = ["\\HasChildren" if children else "\\HasNoChildren"]
            if folder.special_use is not None:
                attrs.append(folder.special_use.value)
            if command.return_subscribed and folder.subscribed and not command.lsub:
                attrs.append("\\Subscribed")
            if command.lsub:
                attrs = []
            line = f'* {verb} ({" ".join(attrs)}) "/" '.encode() + self._name_out(folder.name)
            self.conn.untagged(line + b"\r\n")
            if command.return_status:
                self.conn.untagged(await self._status_line(folder, command.return_status))
        self.conn.complete("OK", f"{verb} completed")

    async def _status_line(self, folder: Folder, items: Sequence[str]) -> bytes:
        values: list[str] = []
        deleted = None
        for item in items:
            if item == "MESSAGES":
                values.append(f"MESSAGES {folder.messages}")
            elif item == "UIDNEXT":
                values.append(f"UIDNEXT {folder.uidnext}")
            elif item == "UIDVALIDITY":
                values.append(f"UIDVALIDITY {folder.uidvalidity}")
            elif item == "UNSEEN":
                values.append(f"UNSEEN {folder.unseen}")
            elif item == "RECENT":
                values.append("RECENT 0")
            elif item == "SIZE":
                values.append(f"SIZE {folder.size}")
            elif item == "HIGHESTMODSEQ":
                values.append(f"HIGHESTMODSEQ {max(folder.highest_modseq, 1)}")
            elif item == "APPENDLIMIT":
                values.append(f"APPENDLIMIT {self.conn.settings.append_limit}")
            elif item == "DELETED":
                if deleted is None:
                    messages = await self.mailboxes.messages(self._user(), folder.name)
                    deleted = sum(1 for m in messages if DELETED in m.flags)
                values.append(f"DELETED {deleted}")
        return b"* STATUS " + self._name_out(folder.name) + f" ({' '.join(values)})\r\n".encode()

    async def _do_status(self, tag: str, command: cmds.Status) -> None:
        folder = await self.mailboxes.folder(self._user(), command.mailbox)
        self.conn.untagged(await self._status_line(folder, command.items))
        self.conn.complete("OK", "STATUS completed")

    async def _do_append(self, tag: str, command: cmds.Append) -> None:
        user = self._user()
        try:
            folder = await self.mailboxes.folder(user, command.mailbox)
        except FolderNotFound:
            self.conn.complete("NO", f"No mailbox named {command.mailbox}", "TRYCREATE")
            return
        content = command.message
        if not content:
            self.conn.complete("NO", "An empty message cannot be appended", "CANNOT")
            return
        structure = await asyncio.to_thread(mime.parse, content)
        writer = self.ctx.blobs.new_writer()
        try:
            writer.write(content)
            spooled: SpooledBlob = await writer.finish()
        except BaseException:
            writer.abort()
            raise
        await self.ctx.blobs.publish([spooled])
        self.ctx.structures.put(spooled.blob_id, structure)
        sender = (structure.root.header("from") or b"").decode("utf-8", "replace")[:200]
        subject = searching.decode_header_value(structure.root.header("subject") or b"")[:200]
        appended = await self.mailboxes.append(
            user,
            folder.name,
            BlobRef(spooled.blob_id, spooled.size, spooled.sha256),
            command.flags,
            command.internaldate,
            sender=sender,
            subject=subject,
        )
        await self._sync(expunges=True)
        self.conn.complete(
            "OK", "APPEND completed", f"APPENDUID {appended.uidvalidity} {appended.uid}"
        )

    async def _do_getquota(self, tag: str, command: cmds.GetQuota) -> None:
        if command.root != "":
            self.conn.complete("NO", 'The only quota root is ""', "NONEXISTENT")
            return
        await self._quota_line()
        self.conn.complete("OK", "GETQUOTA completed")

    async def _do_getquotaroot(self, tag: str, command: cmds.GetQuotaRoot) -> None:
        await self.mailboxes.folder(self._user(), command.mailbox)
        self.conn.untagged(b"* QUOTAROOT " + self._name_out(command.mailbox) + b' ""\r\n')
        await self._quota_line()
        self.conn.complete("OK", "GETQUOTAROOT completed")

    async def _quota_line(self) -> None:
        """RFC 9208: STORAGE in KiB and MESSAGE counts; todoku sets no limit, so each limit is
        the largest the syntax allows, and a client shows the usage."""
        usage = await self.mailboxes.usage(self._user())
        kib = (usage.octets + 1023) // 1024
        unlimited = (1 << 63) - 1
        self.conn.untagged(
            b'* QUOTA "" (STORAGE %d %d MESSAGE %d %d)\r\n'
            % (kib, unlimited, usage.messages, unlimited)
        )

    # --- IDLE

    async def _do_idle(self, tag: str, command: cmds.Idle) -> None:
        await self._sync(expunges=True)
        await self._flush()
        self._idle_task = asyncio.create_task(self._idle_pump(), name=f"imap-idle-{self.cid}")

    async def _idle_pump(self) -> None:
        """While IDLE: wait on the change feed, tell the client at once (RFC 2177)."""
        user = self._user()
        since = await self.mailboxes.highest_modseq(user)
        while True:
            changes = await self.mailboxes.wait_changes(user, since, IDLE_POLL)
            if not changes:
                continue
            since = max(since, *(c.modseq for c in changes))
            if self.folder is not None and any(
                c.folder == self.folder or c.kind is ChangeKind.RESYNC for c in changes
            ):
                await self._sync(expunges=True)
                await self._flush()

    async def _stop_idle(self) -> None:
        task, self._idle_task = self._idle_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _uses_modseq(key: searching.Key) -> bool:
    return key.op == "MODSEQ" or any(_uses_modseq(k) for k in key.children)


def _ascending_pairs(pairs: Sequence[tuple[int, int]]) -> bool:
    targets = [t for _, t in pairs]
    return targets == sorted(targets)


class ImapLink(SessionLink):
    """One IMAP connection (net/link.py)."""

    def __init__(self, ctx: ImapContext, service: str, settings: SessionSettings) -> None:
        implicit_tls = ctx.tls_context if settings.tls_active else None  # imaps (RFC 8314)
        super().__init__(COMMAND_TIMEOUT, BUFFER_LIMIT, ctx.connections, implicit_tls)
        self.ctx = ctx
        self.service = service
        self.settings = settings

    def start_session(self) -> ImapSession:
        return ImapSession(self.ctx, self.service, self.settings, self)

    def refusal(self, refused: Refusal) -> bytes:
        if refused.in_all:
            return b"* BYE [UNAVAILABLE] Too many connections; try again later\r\n"
        return (
            f"* BYE [UNAVAILABLE] Too many connections from [{refused.client}]; try again later\r\n"
        ).encode()
