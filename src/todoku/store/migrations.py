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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "outbound queue: attempts, reports, submitted_by, requiretls",
        queue_reports,
        queue_reports_missing,
    ),
    Migration(2, "users.admin: who may administer the server", user_admin),
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
