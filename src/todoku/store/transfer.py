"""``todoku import`` and ``todoku export``: mailboxes in and out as mbox files and Maildir folders.

Tools of the SQLite backend, beside it (issue 14): they read and write through ``SqliteStore``
(its mailbox rows, its message files, and the ``transfer_origin`` table it keeps for round
trips), not through the async interfaces.

Formats read: mbox as written by Thunderbird, Postfix local delivery and Gmail Takeout (``From ``
separator lines, LF or CRLF line ends, ``>From`` quoting read as mboxrd), and Maildir as written
by Dovecot and Thunderbird (``cur/``, ``new/``; the ``:2,FLAGS`` suffix).

Round trips are byte for byte. Stored messages use CRLF, as SMTP delivers them and POP3 sends
them; a message whose file used bare LF throughout is stored with CRLF and written back with LF.
What the stored message cannot carry is kept beside it in ``transfer_origin``: the mbox ``From ``
line, or the Maildir file name (which holds the flags: S seen, R replied, F flagged, T trashed,
D draft). mboxrd quoting is exact in both directions: import removes one ``>`` from lines
matching ``>+From ``, export adds one back, so quote(unquote(line)) == line. Dates: the mbox
``From `` line's date, else the Maildir file's mtime, becomes the received time; export writes
them back (a From line for mail that arrived by SMTP, the mtime of a Maildir file).

Import is idempotent: a message whose bytes are already in the folder is skipped. Both work on one
folder (``--folder``, INBOX by default). Maildir flags become IMAP flags on import, and export
writes a message's current flags (changed over IMAP since, say) into its Maildir name.

Exports hold mail: the mbox file, and the Maildir folder and its files, are created 0600/0700
whatever the umask, as the data directory is (``datadir``).
"""

from __future__ import annotations

import calendar
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from todoku.store.blobs import fsync_dir
from todoku.store.datadir import make_private_dir, open_private
from todoku.store.mailboxes import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    INBOX,
    SEEN,
    normalize_name,
)
from todoku.store.sqlite_mailboxes import flags_of

if TYPE_CHECKING:
    from todoku.store.sqlite import SqliteStore

Progress = Callable[[str, int, int], None]
# (blob id, sender, received at, origin format, origin envelope, origin line ends, flags)
ExportRow = tuple[str, str, float, str | None, str | None, str | None, frozenset[str]]

ORIGIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfer_origin (
    blob_id TEXT PRIMARY KEY,
    format TEXT NOT NULL,       -- 'mbox' or 'maildir'
    envelope TEXT NOT NULL,     -- the mbox From line, or the Maildir path 'cur/NAME:2,FLAGS'
    line_ends TEXT NOT NULL     -- 'lf' when the original used bare LF throughout, else 'raw'
)
"""
_QUOTED_FROM = re.compile(rb"^(>*)From ", re.MULTILINE)
_FROM_LINE_DATE = re.compile(r"^From \S+ +(.+)$")


class TransferError(Exception):
    """An import or export that cannot start; the message names the path and the reason."""


@dataclass(frozen=True, slots=True)
class SourceMessage:
    data: bytes  # as found in the source, unquoted (mbox) but with its own line ends
    envelope: str
    received_at: float | None


@dataclass
class TransferResult:
    imported: int = 0
    skipped: int = 0
    exported: int = 0

    def line(self, verb: str, where: str) -> str:
        if verb == "import":
            return f"imported {self.imported} messages into {where}; {self.skipped} already there"
        return f"exported {self.exported} messages to {where}"


# ---------------------------------------------------------------------- reading sources


def read_mbox(path: Path) -> Iterator[SourceMessage]:
    """Split at ``From `` lines that start the file or follow an empty line (the separator)."""
    data = path.read_bytes()
    if data and not data.startswith(b"From "):
        raise TransferError(f"{path}: not an mbox file (it does not start with a 'From ' line)")
    starts = [0] + [m.start() + 1 for m in re.finditer(rb"\n(?=\r?\nFrom )", data)]
    # starts[i>0] points at the empty line: the message before ends just before it.
    bounds = []
    for index, start in enumerate(starts):
        begin = start if index == 0 else data.index(b"From ", start)
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        bounds.append((begin, end))
    for begin, end in bounds:
        chunk = data[begin:end]
        newline = chunk.index(b"\n") + 1
        from_line = chunk[:newline].rstrip(b"\r\n").decode("utf-8", "replace")
        body = chunk[newline:]
        if end == len(data):
            # The last message: its trailing empty separator line, if there is one.
            if body.endswith(b"\r\n\r\n"):
                body = body[:-2]
            elif body.endswith(b"\n\n"):
                body = body[:-1]
        body = _QUOTED_FROM.sub(
            lambda m: m.group(1)[1:] + b"From " if m.group(1) else m.group(0), body
        )
        yield SourceMessage(body, from_line, _from_line_time(from_line))


def _from_line_time(from_line: str) -> float | None:
    match = _FROM_LINE_DATE.match(from_line)
    if not match:
        return None
    text = re.sub(r" [+-]\d{4}(?= \d{4}$)", "", match.group(1).strip())  # Gmail: "... +0000 2025"
    try:
        return float(calendar.timegm(time.strptime(text, "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None


def read_maildir(path: Path) -> Iterator[SourceMessage]:
    for sub in ("cur", "new"):
        directory = path / sub
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.is_file() and not entry.name.startswith("."):
                yield SourceMessage(
                    entry.read_bytes(), f"{sub}/{entry.name}", entry.stat().st_mtime
                )


def read_source(path: Path) -> tuple[str, list[SourceMessage]]:
    if path.is_dir():
        if not ((path / "cur").is_dir() or (path / "new").is_dir()):
            raise TransferError(f"{path}: not a Maildir folder (no cur/ or new/ inside)")
        return "maildir", list(read_maildir(path))
    if path.is_file():
        return "mbox", list(read_mbox(path))
    raise TransferError(f"{path}: no such file or directory")


# ---------------------------------------------------------------------- import


def _to_stored(data: bytes) -> tuple[bytes, str]:
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n"), "lf"
    return data, "raw"


def _facts(data: bytes) -> tuple[str, str, float | None]:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data[:65536])
    sender = email.utils.parseaddr(str(headers.get("Return-Path") or headers.get("From") or ""))[1]
    raw_subject = str(headers.get("Subject") or "").replace("\r", "").replace("\n", "")
    try:  # RFC 2047 encoded words, as the SMTP path stores them
        subject = str(email.header.make_header(email.header.decode_header(raw_subject)))[:300]
    except (ValueError, LookupError, UnicodeError):
        subject = raw_subject[:300]
    date = None
    if headers.get("Date"):
        try:
            date = email.utils.parsedate_to_datetime(str(headers["Date"])).timestamp()
        except (TypeError, ValueError, IndexError):
            date = None
    return sender, subject, date


# Maildir info letters (``:2,FLAGS``, ASCII order) and the IMAP flags they stand for; P
# (passed) and Dovecot's keyword letters a-z have no IMAP flag and are kept from the origin.
MAILDIR_FLAGS = {"D": DRAFT, "F": FLAGGED, "R": ANSWERED, "S": SEEN, "T": DELETED}
_LETTER_OF = {flag: letter for letter, flag in MAILDIR_FLAGS.items()}


def maildir_flags(envelope: str) -> frozenset[str]:
    """The IMAP flags a Maildir file name carries (``cur/NAME:2,FRS``)."""
    _, _, info = envelope.rpartition(":2,")
    if ":2," not in envelope:
        return frozenset()
    return frozenset(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)


def maildir_name(envelope: str, flags: frozenset[str]) -> str:
    """The Maildir path for a message with these flags now (set by IMAP since the import, say):
    the origin's name with its info letters redone, in ASCII order as Maildir wants them."""
    _, _, name = envelope.partition("/")
    base, _, info = name.partition(":2,")
    kept = {c for c in info if c not in MAILDIR_FLAGS}
    letters = "".join(sorted(kept | {_LETTER_OF[f] for f in flags if f in _LETTER_OF}))
    if not letters and ":2," not in name:
        return envelope  # no flags then or now: the name as the mail program left it
    return f"cur/{base}:2,{letters}"


def import_mailbox(
    store: SqliteStore,
    mailbox: str,
    source: Path,
    progress: Progress | None = None,
    folder: str = INBOX,
) -> TransferResult:
    """Into ``folder`` (made when missing), with the flags of Maildir file names."""
    progress = progress or (lambda phase, done, total: None)
    folder = normalize_name(folder)
    kind, messages = read_source(source)
    conn = sqlite3.connect(store.db_path, timeout=60, isolation_level=None)
    try:
        conn.execute(ORIGIN_SCHEMA)
        present = {
            row[0]
            for row in conn.execute(
                "SELECT b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob_id"
                " JOIN folders f ON f.id = m.folder_id"
                " WHERE m.mailbox = ? AND f.name = ? AND f.deleted_at IS NULL",
                (mailbox, folder),
            )
        }
        result = TransferResult()
        for done, message in enumerate(messages, 1):
            progress(f"importing {kind}", done, len(messages))
            stored, line_ends = _to_stored(message.data)
            digest = hashlib.sha256(stored).hexdigest()
            if digest in present:
                result.skipped += 1
                continue
            writer = store.new_blob()
            writer.write(stored)
            sender, subject, header_date = _facts(stored)
            received_at = message.received_at or header_date or time.time()
            flags = maildir_flags(message.envelope) if kind == "maildir" else frozenset()
            store.file_sync(writer.finish(), mailbox, folder, received_at, sender, subject, flags)
            conn.execute(
                "INSERT OR REPLACE INTO transfer_origin (blob_id, format, envelope, line_ends)"
                " VALUES (?, ?, ?, ?)",
                (writer.blob_id, kind, message.envelope, line_ends),
            )
            present.add(digest)
            result.imported += 1
    finally:
        conn.close()
    return result


# ---------------------------------------------------------------------- export


def export_mailbox(
    store: SqliteStore,
    mailbox: str,
    fmt: str,
    destination: Path,
    progress: Progress | None = None,
    folder: str = INBOX,
) -> TransferResult:
    """One folder (INBOX unless named), in UID order; Maildir names carry its current flags."""
    progress = progress or (lambda phase, done, total: None)
    folder = normalize_name(folder)
    conn = sqlite3.connect(store.db_path, timeout=60, isolation_level=None)
    try:
        conn.execute(ORIGIN_SCHEMA)
        if (
            conn.execute(
                "SELECT 1 FROM folders WHERE owner = ? AND name = ? AND deleted_at IS NULL",
                (mailbox, folder),
            ).fetchone()
            is None
        ):
            raise TransferError(f"{mailbox} has no folder {folder}")
        rows = [
            (blob_id, sender, received_at, kind, envelope, line_ends, flags_of(flags))
            for blob_id, sender, received_at, kind, envelope, line_ends, flags in conn.execute(
                "SELECT m.blob_id, m.sender, m.received_at, o.format, o.envelope, o.line_ends,"
                " m.flags FROM messages m JOIN folders f ON f.id = m.folder_id"
                " LEFT JOIN transfer_origin o ON o.blob_id = m.blob_id"
                " WHERE m.mailbox = ? AND f.name = ? AND f.deleted_at IS NULL"
                " AND m.deleted_at IS NULL ORDER BY m.uid",
                (mailbox, folder),
            ).fetchall()
        ]
    finally:
        conn.close()
    result = TransferResult()
    if fmt == "mbox":
        _export_mbox(store, rows, destination, progress, result)
    elif fmt == "maildir":
        _export_maildir(store, rows, destination, progress, result)
    else:
        raise TransferError(f"--format: expected mbox or maildir, got {fmt!r}")
    return result


def _content(store: SqliteStore, blob_id: str, line_ends: str | None) -> bytes:
    with store.open_blob(blob_id) as handle:
        data = handle.read()
    return data.replace(b"\r\n", b"\n") if line_ends == "lf" else data


def _export_mbox(
    store: SqliteStore,
    rows: list[ExportRow],
    destination: Path,
    progress: Progress,
    result: TransferResult,
) -> None:
    if destination.is_dir():
        raise TransferError(f"{destination}: is a directory; mbox export writes one file")
    temp = destination.with_name(destination.name + ".tmp")
    with open_private(temp, exclusive=False) as out:
        for done, (blob_id, sender, received_at, kind, envelope, line_ends, _) in enumerate(
            rows, 1
        ):
            progress("exporting mbox", done, len(rows))
            if kind == "mbox" and envelope:
                from_line = envelope
            else:
                stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(received_at))
                from_line = f"From {sender or 'MAILER-DAEMON'} {stamp}"
            ends = (
                line_ends if kind == "mbox" else "lf"
            )  # mbox files are LF unless they came as CRLF
            data = _content(store, blob_id, ends)
            newline = b"\r\n" if ends == "raw" else b"\n"
            out.write(from_line.encode() + newline)
            out.write(_QUOTED_FROM.sub(lambda m: b">" + m.group(0), data))
            if not data.endswith(newline):
                out.write(newline)
            out.write(newline)  # the empty line before the next From line
            result.exported += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, destination)


def _export_maildir(
    store: SqliteStore,
    rows: list[ExportRow],
    destination: Path,
    progress: Progress,
    result: TransferResult,
) -> None:
    for sub in ("tmp", "new", "cur"):
        make_private_dir(destination / sub)
    for done, (blob_id, _sender, received_at, kind, envelope, line_ends, flags) in enumerate(
        rows, 1
    ):
        progress("exporting maildir", done, len(rows))
        if kind == "maildir" and envelope and envelope.split("/", 1)[0] in ("cur", "new"):
            relative = maildir_name(envelope, flags)
            data = _content(store, blob_id, line_ends)
        else:
            relative = maildir_name(f"cur/{int(received_at)}.{blob_id}.todoku:2,", flags)
            data = _content(store, blob_id, "lf")  # Maildir files are LF, as Dovecot writes them
        temp = destination / "tmp" / Path(relative).name
        with open_private(temp, exclusive=False) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.utime(temp, (received_at, received_at))
        os.replace(temp, destination / relative)  # Maildir delivery: tmp/ then rename
        result.exported += 1
    for sub in ("new", "cur"):
        fsync_dir(destination / sub)
