"""Reading a data directory from outside the server, to check what a crash left behind.

The census opens ``todoku.db`` read-only with plain sqlite3 and reads every message's content
(a ``contents`` row for small messages, a file for larger ones), so it trusts nothing the server
says about itself: a row counts only if its content is there with the size and SHA-256 the
``blobs`` table recorded.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TAG_PATTERN = re.compile(rb"^X-Crash-Tag: (\S+)\r\n", re.MULTILINE)


def message_bytes(tag: str, sender: str, recipients: list[str], filler: int = 0) -> bytes:
    """A message whose last line names its tag, so a truncated copy is recognisable."""
    body = "".join(f"line {i} of {tag} {'x' * 40}\r\n" for i in range(filler))
    return (
        f"From: <{sender}>\r\nTo: {', '.join(recipients)}\r\nSubject: crash {tag}\r\n"
        f"X-Crash-Tag: {tag}\r\n\r\n{body}end of {tag}\r\n"
    ).encode()


def is_complete(data: bytes) -> bool:
    match = TAG_PATTERN.search(data)
    return bool(match) and data.endswith(b"end of " + match.group(1) + b"\r\n")  # type: ignore[union-attr]


@dataclass
class Census:
    """Where each tag was found: ``placements[tag]`` counts rows per destination."""

    placements: dict[str, Counter[str]] = field(default_factory=dict)
    uids: dict[tuple[str, str], str] = field(default_factory=dict)  # (mailbox, "v.uid") -> blob
    deleted: set[tuple[str, str]] = field(default_factory=set)  # (mailbox, "v.uid") marked deleted
    damaged_rows: list[str] = field(default_factory=list)
    orphans_complete: int = 0
    orphans_partial: list[str] = field(default_factory=list)
    tmp_files: int = 0
    counter_errors: list[str] = field(default_factory=list)


def take_census(data_dir: Path, verified: dict[str, str] | None = None) -> Census:
    """``verified`` caches blob id → tag across calls (committed content never changes)."""
    verified = {} if verified is None else verified
    census = Census()
    uri = f"file:{data_dir / 'todoku.db'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        blobs = {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT id, size, sha256 FROM blobs").fetchall()
        }
        rows = conn.execute(
            "SELECT m.mailbox, m.uid, f.uidvalidity, m.blob_id, m.deleted_at FROM messages m"
            " JOIN folders f ON f.id = m.folder_id"
        ).fetchall()
        queued = conn.execute("SELECT id, blob_id FROM queue").fetchall()
        held = {row[0]: bytes(row[1]) for row in conn.execute("SELECT id, data FROM contents")}
        counters = conn.execute(
            "SELECT f.owner || ' ' || f.name, f.next_uid, MAX(m.uid) FROM folders f"
            " LEFT JOIN messages m ON m.folder_id = f.id GROUP BY f.id"
        ).fetchall()
    finally:
        conn.close()

    def tag_of(blob_id: str) -> str | None:
        if blob_id in verified:
            return verified[blob_id]
        if blob_id not in blobs:
            census.damaged_rows.append(f"{blob_id}: no blobs row")
            return None
        size, sha256 = blobs[blob_id]
        path = data_dir / "messages" / blob_id[:5] / blob_id
        try:
            data = held[blob_id] if blob_id in held else path.read_bytes()
        except OSError as exc:
            census.damaged_rows.append(f"{blob_id}: {exc.strerror}")
            return None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256 or not is_complete(data):
            census.damaged_rows.append(f"{blob_id}: content does not match its row")
            return None
        match = TAG_PATTERN.search(data)
        assert match is not None
        verified[blob_id] = match.group(1).decode()
        return verified[blob_id]

    for mailbox, uid, uidvalidity, blob_id, deleted_at in rows:
        tag = tag_of(blob_id)
        if tag is not None:
            census.placements.setdefault(tag, Counter())[mailbox] += 1
        census.uids[(mailbox, f"{uidvalidity}.{uid}")] = blob_id
        if deleted_at is not None:
            census.deleted.add((mailbox, f"{uidvalidity}.{uid}"))
    for _queue_id, blob_id in queued:
        tag = tag_of(blob_id)
        if tag is not None:
            census.placements.setdefault(tag, Counter())["queue"] += 1
    for address, next_uid, max_uid in counters:
        if max_uid is not None and next_uid <= max_uid:
            census.counter_errors.append(f"{address}: next_uid {next_uid} <= max uid {max_uid}")

    referenced = set(blobs)
    for path in (data_dir / "messages").glob("*/*"):
        if path.name in referenced:
            continue
        if is_complete(path.read_bytes()):
            census.orphans_complete += 1
        else:
            census.orphans_partial.append(path.name)
    for blob_id, data in held.items():
        if blob_id in referenced:
            continue
        if is_complete(data):
            census.orphans_complete += 1
        else:
            census.orphans_partial.append(blob_id)
    census.tmp_files = sum(1 for _ in (data_dir / "tmp").iterdir())
    return census


def stored_contents(data_dir: Path) -> list[bytes]:
    """Every message's content in the data directory, of both kinds (``contents`` rows of the
    index, files under ``messages/``), read from outside the server; sorted by id."""
    conn = sqlite3.connect(f"file:{data_dir / 'todoku.db'}?mode=ro", uri=True, timeout=30)
    try:
        found = {row[0]: bytes(row[1]) for row in conn.execute("SELECT id, data FROM contents")}
    finally:
        conn.close()
    for path in (data_dir / "messages").rglob("*"):
        if path.is_file():
            found[path.name] = path.read_bytes()
    return [found[blob_id] for blob_id in sorted(found)]
