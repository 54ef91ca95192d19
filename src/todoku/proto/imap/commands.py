"""IMAP commands as typed values, from a parsed command line (RFC 9051 §6 and extensions).

``parse_command(name, tokenizer, utf8)`` reads the arguments of one command and returns its
dataclass, or raises ``ImapSyntaxError`` with the reason the client gets in its tagged BAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from todoku.proto.imap import fetch as fetch_items
from todoku.proto.imap import search as search_keys
from todoku.proto.imap.syntax import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    Tokenizer,
    Value,
    astring,
    atom,
    decode_mailbox,
    number,
    parenthesised,
    parse_date_time,
    sequence_set,
)


@dataclass(frozen=True, slots=True)
class Noop:
    check: bool = False  # CHECK (rev1) is NOOP here: every change is durable at once


@dataclass(frozen=True, slots=True)
class Select:
    mailbox: str
    read_only: bool
    condstore: bool = False
    # QRESYNC (uidvalidity modseq [known-uids [(seq-match uid-match)]])
    qresync: tuple[int, int, SequenceSet | None, tuple[SequenceSet, SequenceSet] | None] | None = (
        None
    )


@dataclass(frozen=True, slots=True)
class Create:
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    mailbox: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class ListMailboxes:
    reference: str
    patterns: tuple[str, ...]
    subscribed_only: bool = False  # (SUBSCRIBED) selection or LSUB
    special_use_only: bool = False  # (SPECIAL-USE) selection
    recursive_match: bool = False
    return_subscribed: bool = False
    return_children: bool = True
    return_special_use: bool = True
    return_status: tuple[str, ...] = ()
    lsub: bool = False
    extended: bool = False  # any LIST-EXTENDED syntax was used


@dataclass(frozen=True, slots=True)
class Status:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    mailbox: str
    flags: tuple[str, ...]
    internaldate: float | None
    message: bytes


@dataclass(frozen=True, slots=True)
class Idle:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    expunge: bool  # CLOSE expunges, UNSELECT does not


@dataclass(frozen=True, slots=True)
class Expunge:
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search:
    uid: bool
    key: search_keys.Key
    returns: tuple[str, ...] | None  # None: plain SEARCH; () or items: ESEARCH


@dataclass(frozen=True, slots=True)
class Fetch:
    uid: bool
    sequence: SequenceSet
    items: tuple[fetch_items.Item, ...]
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store:
    uid: bool
    sequence: SequenceSet
    mode: str  # "+", "-" or ""
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    uid: bool
    sequence: SequenceSet
    mailbox: str
    move: bool


@dataclass(frozen=True, slots=True)
class GetQuota:
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    mailbox: str


Command = (
    Noop
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | ListMailboxes
    | Status
    | Append
    | Idle
    | Close
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | GetQuota
    | GetQuotaRoot
)

STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "SIZE",
        "RECENT",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
    }
)

# The commands the driver executes, by the state they need.
AUTHENTICATED_COMMANDS = frozenset(
    {
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "STATUS",
        "APPEND",
        "IDLE",
        "GETQUOTA",
        "GETQUOTAROOT",
        "NOOP",
        "CHECK",
    }
)
SELECTED_COMMANDS = frozenset(
    {"CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID"}
)


def parse_command(name: str, tok: Tokenizer, utf8: bool) -> Command:
    """The arguments of ``name`` (already upper-case), read to the end of the command."""
    if name in ("NOOP", "CHECK"):
        tok.end()
        return Noop(check=name == "CHECK")
    if name == "IDLE":
        tok.end()
        return Idle()
    if name in ("CLOSE", "UNSELECT"):
        tok.end()
        return Close(expunge=name == "CLOSE")
    if name == "EXPUNGE":
        tok.end()
        return Expunge()
    tok.space()
    if name in ("SELECT", "EXAMINE"):
        return _select(tok, name == "EXAMINE", utf8)
    if name == "CREATE":
        mailbox = _mailbox(tok, utf8)
        uses: tuple[str, ...] = ()
        if tok.maybe_space():
            opts = parenthesised(tok.value(), "CREATE parameters")
            if len(opts) != 2 or not isinstance(opts[0], Atom) or opts[0].upper != "USE":
                raise ImapSyntaxError("CREATE's parameter is (USE (\\Role))")
            uses = tuple(atom(v, "a special use") for v in parenthesised(opts[1], "USE"))
        tok.end()
        return Create(mailbox, uses)
    if name == "DELETE":
        return Delete(_last_mailbox(tok, utf8))
    if name == "RENAME":
        old = _mailbox(tok, utf8)
        tok.space()
        return Rename(old, _last_mailbox(tok, utf8))
    if name in ("SUBSCRIBE", "UNSUBSCRIBE"):
        return Subscribe(_last_mailbox(tok, utf8), name == "SUBSCRIBE")
    if name in ("LIST", "LSUB"):
        return _list(tok, lsub=name == "LSUB", utf8=utf8)
    if name == "STATUS":
        mailbox = _mailbox(tok, utf8)
        tok.space()
        items = tuple(
            atom(v, "a STATUS item").upper() for v in parenthesised(tok.value(), "STATUS items")
        )
        tok.end()
        unknown = [i for i in items if i not in STATUS_ITEMS]
        if unknown or not items:
            raise ImapSyntaxError(f"unknown STATUS item {unknown[0] if unknown else '()'}")
        return Status(mailbox, items)
    if name == "APPEND":
        return _append(tok, utf8)
    if name in ("GETQUOTA",):
        root = astring(tok.value(), "a quota root")
        tok.end()
        return GetQuota(root)
    if name == "GETQUOTAROOT":
        return GetQuotaRoot(_last_mailbox(tok, utf8))
    uid = False
    if name == "UID":
        sub = atom(tok.value(), "the UID command").upper()
        if sub not in ("FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE"):
            raise ImapSyntaxError(f"UID {sub} is not a command")
        name, uid = sub, True
        tok.space()
        if name == "EXPUNGE":
            seq = sequence_set(tok.value())
            tok.end()
            return Expunge(seq)
    if name == "SEARCH":
        return _search(tok, uid)
    if name == "FETCH":
        return _fetch(tok, uid)
    if name == "STORE":
        return _store(tok, uid)
    if name in ("COPY", "MOVE"):
        seq = sequence_set(tok.value())
        tok.space()
        return Copy(uid, seq, _last_mailbox(tok, utf8), name == "MOVE")
    raise ImapSyntaxError(f"{name} is not a command")


def _mailbox(tok: Tokenizer, utf8: bool) -> str:
    name = astring(tok.value(), "a mailbox name")
    if name.upper() == "INBOX":
        return "INBOX"
    return decode_mailbox(name, utf8)


def _last_mailbox(tok: Tokenizer, utf8: bool) -> str:
    name = _mailbox(tok, utf8)
    tok.end()
    return name


def _select(tok: Tokenizer, read_only: bool, utf8: bool) -> Select:
    mailbox = _mailbox(tok, utf8)
    condstore = False
    qresync = None
    if tok.maybe_space():
        params = parenthesised(tok.value(), "SELECT parameters")
        i = 0
        while i < len(params):
            key = atom(params[i], "a SELECT parameter").upper()
            if key == "CONDSTORE":
                condstore = True
            elif key == "QRESYNC" and i + 1 < len(params):
                i += 1
                q = parenthesised(params[i], "QRESYNC parameters")
                if len(q) < 2:
                    raise ImapSyntaxError("QRESYNC needs (uidvalidity modseq ...)")
                known = sequence_set(q[2], "known UIDs") if len(q) > 2 else None
                match = None
                if len(q) > 3:
                    pair = parenthesised(q[3], "sequence match data")
                    if len(pair) != 2:
                        raise ImapSyntaxError("sequence match data is (seq-set uid-set)")
                    match = (sequence_set(pair[0]), sequence_set(pair[1]))
                qresync = (
                    number(q[0], "UIDVALIDITY", nonzero=True),
                    number(q[1], "a mod-sequence", bits=63),
                    known,
                    match,
                )
            else:
                raise ImapSyntaxError(f"unknown SELECT parameter {key}")
            i += 1
    tok.end()
    return Select(mailbox, read_only, condstore or qresync is not None, qresync)


_SELECT_OPTIONS = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_RETURN_OPTIONS = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"}


def _list(tok: Tokenizer, *, lsub: bool, utf8: bool) -> ListMailboxes:
    selection: list[str] = []
    extended = False
    first = tok.value()
    if isinstance(first, list) and not lsub:
        extended = True
        selection = [atom(v, "a LIST selection option").upper() for v in first]
        bad = [s for s in selection if s not in _SELECT_OPTIONS]
        if bad:
            raise ImapSyntaxError(f"unknown LIST selection option {bad[0]}")
        tok.space()
        first = tok.value()
    reference = astring(first, "a reference name")
    tok.space()
    pattern_value = tok.value()
    if isinstance(pattern_value, list) and not lsub:
        extended = True
        patterns = tuple(astring(v, "a mailbox pattern") for v in pattern_value)
    else:
        patterns = (astring(pattern_value, "a mailbox pattern"),)
    returns: list[str] = []
    status: tuple[str, ...] = ()
    if tok.maybe_space():
        if atom(tok.value(), "RETURN").upper() != "RETURN" or lsub:
            raise ImapSyntaxError("LIST takes RETURN (options) after the pattern")
        tok.space()
        extended = True
        opts = parenthesised(tok.value(), "RETURN options")
        i = 0
        while i < len(opts):
            opt = atom(opts[i], "a RETURN option").upper()
            if opt not in _RETURN_OPTIONS:
                raise ImapSyntaxError(f"unknown LIST RETURN option {opt}")
            if opt == "STATUS":
                i += 1
                if i >= len(opts):
                    raise ImapSyntaxError("RETURN STATUS needs (items)")
                status = tuple(
                    atom(v, "a STATUS item").upper() for v in parenthesised(opts[i], "STATUS")
                )
                if any(s not in STATUS_ITEMS for s in status):
                    raise ImapSyntaxError("unknown STATUS item in RETURN STATUS")
            returns.append(opt)
            i += 1
    tok.end()
    if "RECURSIVEMATCH" in selection and not ({"SUBSCRIBED", "SPECIAL-USE"} & set(selection)):
        raise ImapSyntaxError("RECURSIVEMATCH needs another selection option")
    return ListMailboxes(
        reference=decode_mailbox(reference, utf8),
        patterns=tuple(decode_mailbox(p, utf8) for p in patterns),
        subscribed_only=lsub or "SUBSCRIBED" in selection,
        special_use_only="SPECIAL-USE" in selection,
        recursive_match="RECURSIVEMATCH" in selection,
        return_subscribed="SUBSCRIBED" in returns or "SUBSCRIBED" in selection,
        return_children=True,
        return_special_use=True,
        return_status=status,
        lsub=lsub,
        extended=extended,
    )


def _append(tok: Tokenizer, utf8: bool) -> Append:
    mailbox = _mailbox(tok, utf8)
    tok.space()
    flags: tuple[str, ...] = ()
    date: float | None = None
    value: Value = tok.value()
    if isinstance(value, list):
        flags = tuple(atom(v, "a flag") for v in value)
        tok.space()
        value = tok.value()
    if isinstance(value, bytes) and tok.peek() == 0x20:
        # A quoted date-time, then the message literal.
        date = parse_date_time(value.decode("ascii", "replace"))
        tok.space()
        value = tok.value()
    elif isinstance(value, Atom) and value.upper == "UTF8":
        # RFC 6855 §4: APPEND ... UTF8 (~{n}): the message is the literal inside.
        tok.space()
        inside = parenthesised(tok.value(), "UTF8 (literal)")
        value = inside[0] if len(inside) == 1 else b""
    if not isinstance(value, bytes):
        raise ImapSyntaxError("APPEND needs the message as a literal")
    tok.end()
    return Append(mailbox, flags, date, value)


def _search(tok: Tokenizer, uid: bool) -> Search:
    returns: tuple[str, ...] | None = None
    start = tok.pos
    first = tok.value()
    if isinstance(first, Atom) and first.upper == "RETURN":
        tok.space()
        returns = tuple(
            atom(v, "a RETURN option").upper() for v in parenthesised(tok.value(), "RETURN options")
        )
        bad = [r for r in returns if r not in ("MIN", "MAX", "ALL", "COUNT", "SAVE")]
        if bad:
            raise ImapSyntaxError(f"unknown SEARCH RETURN option {bad[0]}")
        tok.space()
        start = tok.pos
        first = tok.value()
    if isinstance(first, Atom) and first.upper == "CHARSET":
        tok.space()
        charset = astring(tok.value(), "a charset").upper()
        if charset not in ("UTF-8", "US-ASCII"):
            raise search_keys.BadCharset(charset)
        tok.space()
    else:
        tok.pos = start
    return Search(uid, search_keys.parse(tok), returns)


def _fetch(tok: Tokenizer, uid: bool) -> Fetch:
    seq = sequence_set(tok.value())
    tok.space()
    items = fetch_items.parse_items(tok.value())
    changed_since = None
    vanished = False
    if tok.maybe_space():
        mods = parenthesised(tok.value(), "FETCH modifiers")
        i = 0
        while i < len(mods):
            key = atom(mods[i], "a FETCH modifier").upper()
            if key == "CHANGEDSINCE" and i + 1 < len(mods):
                i += 1
                changed_since = number(mods[i], "a mod-sequence", bits=63)
            elif key == "VANISHED" and uid:
                vanished = True
            else:
                raise ImapSyntaxError(f"unknown FETCH modifier {key}")
            i += 1
        if vanished and changed_since is None:
            raise ImapSyntaxError("VANISHED needs CHANGEDSINCE")
    tok.end()
    if uid and not any(item.name == "UID" for item in items):
        items = (*items, fetch_items.Item("UID"))
    if changed_since is not None and not any(item.name == "MODSEQ" for item in items):
        items = (*items, fetch_items.Item("MODSEQ"))
    return Fetch(uid, seq, items, changed_since, vanished)


def _store(tok: Tokenizer, uid: bool) -> Store:
    seq = sequence_set(tok.value())
    tok.space()
    value = tok.value()
    unchanged_since = None
    if isinstance(value, list):
        if len(value) != 2 or atom(value[0], "a STORE modifier").upper() != "UNCHANGEDSINCE":
            raise ImapSyntaxError("STORE's modifier is (UNCHANGEDSINCE modseq)")
        unchanged_since = number(value[1], "a mod-sequence", bits=63)
        tok.space()
        value = tok.value()
    item = atom(value, "a STORE item").upper()
    mode = item[0] if item[:1] in ("+", "-") else ""
    base = item.lstrip("+-")
    if base not in ("FLAGS", "FLAGS.SILENT"):
        raise ImapSyntaxError("STORE changes FLAGS, +FLAGS or -FLAGS (.SILENT)")
    tok.space()
    rest = tok.values_to_end()
    if len(rest) == 1 and isinstance(rest[0], list):
        rest = rest[0]
    flags = tuple(atom(v, "a flag") for v in rest)
    return Store(uid, seq, mode, base.endswith(".SILENT"), flags, unchanged_since)
