"""The SQLite index's schema migrations, as one numbered list.

``MIGRATIONS[i]`` takes an index at version ``i`` to version ``i + 1`` (``PRAGMA user_version``;
0 is an index written before versions existed). Opening an index runs, in order, every migration
whose number is above the version found (``store.sqlite``), after ``store.datadir`` has kept a
copy of the index; a brand-new index is created at version 0 (``sqlite.SCHEMA``) and then runs
them all, so there is one way to every version. Each migration is idempotent (``IF NOT EXISTS``,
a column added only when missing): an upgrade interrupted half-way runs again at the next open.

Adding one: append ``Migration(<next number>, "why", function)``; ``SCHEMA_VERSION`` follows.
Two changes made in parallel that took the same number keep both, renumbered in landing order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int  # the version the index has after this migration
    why: str
    apply: Callable[[sqlite3.Connection], None]
    # Whether an index already at this version still lacks what the migration adds (one made
    # before versions were recorded may have part of it); None: never.
    missing: Callable[[sqlite3.Connection], bool] | None = None


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def tables(conn: sqlite3.Connection) -> set[str]:
    return {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }


def add_columns(conn: sqlite3.Connection, table: str, wanted: list[tuple[str, str]]) -> None:
    have = columns(conn, table)
    for name, decl in wanted:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


# ---------------------------------------------------------------- 1: the outbound queue (issue 4)

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_attempts (
    queue_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    recipient TEXT NOT NULL,
    domain TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL,
    code INTEGER,
    enhanced TEXT NOT NULL,
    text TEXT NOT NULL,
    remote_mta TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_attempts_by_id ON queue_attempts (queue_id, started_at);
"""
QUEUE_COLUMNS = {
    # submitted_by (issue 12): NULL in rows queued before it existed, so they leave unsigned.
    # requiretls (RFC 8689 §4.1): 0 in rows queued before it existed, as none asked for it.
    "queue": [
        ("delay_warned", "INTEGER NOT NULL DEFAULT 0"),
        ("submitted_by", "TEXT"),
        ("requiretls", "INTEGER NOT NULL DEFAULT 0"),
    ],
    "queue_recipients": [
        ("phase", "TEXT NOT NULL DEFAULT ''"),
        ("code", "INTEGER"),
        ("enhanced", "TEXT NOT NULL DEFAULT ''"),
        ("remote_mta", "TEXT NOT NULL DEFAULT ''"),
        ("reason", "TEXT NOT NULL DEFAULT ''"),
        ("status", "TEXT NOT NULL DEFAULT ''"),
        ("reported", "INTEGER NOT NULL DEFAULT 0"),
    ],
}


def queue_reports(conn: sqlite3.Connection) -> None:
    conn.executescript(QUEUE_SCHEMA)
    for table, wanted in QUEUE_COLUMNS.items():
        add_columns(conn, table, wanted)


def queue_reports_missing(conn: sqlite3.Connection) -> bool:
    if "queue_attempts" not in tables(conn):
        return True
    return any(
        name not in columns(conn, table)
        for table, wanted in QUEUE_COLUMNS.items()
        for name, _ in wanted
    )


# ---------------------------------------------------------------- 2: administrators (issue 14)


def user_admin(conn: sqlite3.Connection) -> None:
    # 0 for every existing user: nobody becomes an administrator by upgrading.
    add_columns(conn, "users", [("admin", "INTEGER NOT NULL DEFAULT 0")])


# ---------------------------------------------------------------- 3: folders, flags, MODSEQ (issue 14)
#
# IMAP's data model (store.mailboxes). ``mailboxes`` (one UID space per address) becomes a folder
# INBOX per address with the same UIDVALIDITY and next UID, so POP3's UIDLs stay exactly the same;
# every message (deleted ones too: they stay recoverable) goes into its owner's INBOX with its UID.
# ``messages`` is rebuilt (UIDs are now unique per folder, not per address); ``mail_users`` holds
# each address's MODSEQ counter; ``expunged`` keeps expunged UIDs with their MODSEQ for QRESYNC.
# The whole step is one transaction that also records version 3, so a crash leaves either the
# old index or the new one.

FOLDERS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mail_users (
    address TEXT PRIMARY KEY,
    modseq INTEGER NOT NULL DEFAULT 1,
    defaults_done INTEGER NOT NULL DEFAULT 0,
    last_uidvalidity INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    special_use TEXT,
    uidvalidity INTEGER NOT NULL,
    next_uid INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    subscribed INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL
)""",
    (
        "CREATE UNIQUE INDEX IF NOT EXISTS folders_by_name ON folders (owner, name)"
        " WHERE deleted_at IS NULL"
    ),
    """CREATE TABLE IF NOT EXISTS expunged (
    folder_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID""",
)
MESSAGES_V3 = """CREATE TABLE messages_v3 (
    id INTEGER PRIMARY KEY,
    mailbox TEXT NOT NULL,
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    uid INTEGER NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL DEFAULT 1,
    deleted_at REAL,
    UNIQUE (folder_id, uid)
)"""
# No index on MODSEQ: CHANGEDSINCE reads one folder through messages_by_folder and filters, which
# costs less than keeping another index up to date on every delivery and flag change.
MESSAGES_V3_INDEXES = (
    "CREATE INDEX IF NOT EXISTS messages_by_folder ON messages (folder_id, deleted_at, uid)",
    "CREATE INDEX IF NOT EXISTS messages_by_owner ON messages (mailbox, deleted_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_blob ON messages (blob_id)",
    (
        "CREATE INDEX IF NOT EXISTS messages_deleted ON messages (deleted_at)"
        " WHERE deleted_at IS NOT NULL"
    ),
)


def folders(conn: sqlite3.Connection) -> None:
    if "folders" in tables(conn) and "folder_id" in columns(conn, "messages"):
        return  # done by a run whose version number was not recorded
    # Rebuilding a table that others refer to: foreign keys off for the step (SQLite's
    # documented procedure), checked again before the commit.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in FOLDERS_SCHEMA:
                conn.execute(statement)
            # Messages of an address without a record (fsck's "no mailbox record") keep their
            # UIDs in a new INBOX, as fsck --repair would have made.
            conn.execute(
                "INSERT OR IGNORE INTO mailboxes (address, uidvalidity, next_uid)"
                " SELECT mailbox, CAST(strftime('%s', 'now') AS INTEGER), MAX(uid) + 1"
                " FROM messages WHERE mailbox NOT IN (SELECT address FROM mailboxes)"
                " GROUP BY mailbox"
            )
            conn.execute(
                "INSERT INTO mail_users (address, modseq, defaults_done, last_uidvalidity)"
                " SELECT address, 1, 0, uidvalidity FROM mailboxes"
            )
            conn.execute(
                "INSERT INTO folders (owner, name, special_use, uidvalidity, next_uid,"
                " highest_modseq, subscribed) SELECT address, 'INBOX', NULL, uidvalidity,"
                " next_uid, 1, 1 FROM mailboxes"
            )
            conn.execute(MESSAGES_V3)
            conn.execute(
                "INSERT INTO messages_v3 (id, mailbox, folder_id, uid, blob_id, size,"
                " received_at, sender, subject, flags, modseq, deleted_at)"
                " SELECT m.id, m.mailbox, f.id, m.uid, m.blob_id, m.size, m.received_at,"
                " m.sender, m.subject, '', 1, m.deleted_at FROM messages m"
                " JOIN folders f ON f.owner = m.mailbox AND f.name = 'INBOX'"
            )
            moved = conn.execute("SELECT COUNT(*) FROM messages_v3").fetchone()[0]
            had = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            if moved != had:
                raise sqlite3.IntegrityError(f"{had - moved} messages would be lost; not migrated")
            conn.execute("DROP TABLE messages")
            conn.execute("DROP TABLE mailboxes")
            conn.execute("ALTER TABLE messages_v3 RENAME TO messages")
            for statement in MESSAGES_V3_INDEXES:
                conn.execute(statement)
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise sqlite3.IntegrityError("a row refers to a missing one after the migration")
            conn.execute("PRAGMA user_version = 3")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


# ---------------------------------------------------------------- 4: small content in the index (issue 14)
#
# Content up to ``blobs.INLINE_LIMIT`` is written into ``contents`` inside the transaction that
# adds the rows referring to it, so a group of accepted messages costs one fsync (the WAL's)
# instead of three in a row (file, directory, WAL). Larger content stays a file. A ``contents``
# row goes with its ``blobs`` row (the trigger), so the rule for removing shared content (nothing
# refers to it any more) is the one rule for both kinds; the file of removed content is unlinked
# after the commit as before. A row without a ``blobs`` row is published content not yet filed
# (IMAP APPEND between ``Blobs.publish`` and ``Mailboxes.append``), an orphan as a file would be.

CONTENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS contents (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS contents_go_with_blobs AFTER DELETE ON blobs
BEGIN
    DELETE FROM contents WHERE id = OLD.id;
END;
"""


def contents(conn: sqlite3.Connection) -> None:
    conn.executescript(CONTENTS_SCHEMA)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "outbound queue: attempts, reports, submitted_by, requiretls",
        queue_reports,
        queue_reports_missing,
    ),
    Migration(2, "users.admin: who may administer the server", user_admin),
    Migration(3, "folders, flags and MODSEQ for IMAP; mail into INBOX", folders),
    Migration(4, "contents: small messages inside the index (one fsync per accept)", contents),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)), "numbered 1, 2, ..."


def pending(version: int) -> list[Migration]:
    """The migrations an index at ``version`` still needs, in order."""
    return [m for m in MIGRATIONS if m.version > version]


def needs_change(conn: sqlite3.Connection, version: int) -> bool:
    """Whether opening this (non-empty) index at ``version`` would change it."""
    if pending(version):
        return True
    return any(m.missing is not None and m.missing(conn) for m in MIGRATIONS)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Run what an index at ``version`` needs (and what an unversioned index half has)."""
    for migration in MIGRATIONS:
        if migration.version > version or (
            migration.missing is not None and migration.missing(conn)
        ):
            migration.apply(conn)
