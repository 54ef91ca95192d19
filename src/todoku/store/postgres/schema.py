"""The PostgreSQL schema and its migrations, as one numbered list (issue 19).

``MIGRATIONS[i]`` takes a database at version ``i`` to ``i + 1``; each is applied in its own
transaction together with its row in ``schema_version``, so a migration is either wholly there
or not at all. ``migrate`` holds a session-level advisory lock (``pg_advisory_lock``) while it
looks and applies: when several nodes start at once, one migrates and the others wait, then find
nothing to do. A database newer than this program is refused (``NewerSchema``): an old node must
not write into tables it does not understand.

Times that only todoku reads (``received_at``, ``next_attempt``) are seconds since the epoch as
``double precision``, as in the SQLite index; a lease's expiry is the database's own clock
(``timestamptz``), so that nodes whose clocks disagree still agree on who holds an entry.
Addresses are stored lower-cased and sorted with ``COLLATE "C"`` (byte order), whatever the
database's locale, so that every backend lists them in the same order.

Message content is in ``blob_chunks`` (``bytea``, at most ``CHUNK`` bytes a row, stored
uncompressed: most mail is compressed already or not worth the database server's CPU), under
a ``blobs`` row; ``published`` is false between ``BlobWriter.finish`` and ``Blobs.publish``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# Any constant of our own: the key of the advisory lock that serialises migrations.
MIGRATION_LOCK = 0x746F646F6B75  # "todoku"


class NewerSchema(RuntimeError):
    """The database was migrated by a newer todoku than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int  # the version the database has after this migration
    why: str
    sql: str


BASE = """
CREATE TABLE users (
    address text PRIMARY KEY,
    password_hash text NOT NULL,
    created_at double precision NOT NULL,
    admin boolean NOT NULL DEFAULT false
);
CREATE TABLE aliases (
    source text NOT NULL,
    target text NOT NULL,
    PRIMARY KEY (source, target)
);

CREATE TABLE blobs (
    id text PRIMARY KEY,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    created_at double precision NOT NULL,
    published boolean NOT NULL DEFAULT false
);
CREATE TABLE blob_chunks (
    blob_id text NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (blob_id, seq)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE queue (
    id text PRIMARY KEY,
    blob_id text NOT NULL REFERENCES blobs (id),
    sender text NOT NULL,
    size bigint NOT NULL,
    received_at double precision NOT NULL,
    next_attempt double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    held boolean NOT NULL DEFAULT false,
    envid text,
    ret text,
    smtputf8 boolean NOT NULL DEFAULT false,
    last_error text NOT NULL DEFAULT '',
    extra jsonb NOT NULL DEFAULT '{}',
    delay_warned boolean NOT NULL DEFAULT false,
    submitted_by text,
    requiretls boolean NOT NULL DEFAULT false,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX queue_due ON queue (next_attempt) WHERE NOT held;
CREATE INDEX queue_by_blob ON queue (blob_id);
CREATE TABLE queue_recipients (
    queue_id text NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
    address text NOT NULL,
    orcpt text,
    notify text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'pending',
    last_reply text NOT NULL DEFAULT '',
    phase text NOT NULL DEFAULT '',
    code integer,
    enhanced text NOT NULL DEFAULT '',
    remote_mta text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT '',
    reported boolean NOT NULL DEFAULT false,
    updated_at double precision NOT NULL,
    PRIMARY KEY (queue_id, address)
);
CREATE TABLE queue_attempts (
    id bigserial PRIMARY KEY,
    queue_id text NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
    started_at double precision NOT NULL,
    recipient text NOT NULL,
    domain text NOT NULL,
    state text NOT NULL,
    phase text NOT NULL,
    code integer,
    enhanced text NOT NULL,
    text text NOT NULL,
    remote_mta text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX queue_attempts_by_id ON queue_attempts (queue_id, started_at, id);

CREATE TABLE mail_users (
    address text PRIMARY KEY,
    modseq bigint NOT NULL DEFAULT 1,
    defaults_done boolean NOT NULL DEFAULT false,
    last_uidvalidity bigint NOT NULL DEFAULT 0
);
CREATE TABLE folders (
    id bigserial PRIMARY KEY,
    address text NOT NULL REFERENCES mail_users (address),
    name text NOT NULL,
    special_use text,
    uidvalidity bigint NOT NULL,
    uidnext bigint NOT NULL DEFAULT 1,
    highest_modseq bigint NOT NULL,
    subscribed boolean NOT NULL DEFAULT false,
    gone boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX folders_by_name ON folders (address, name) WHERE NOT gone;
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    folder_id bigint NOT NULL REFERENCES folders (id),
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    flags text[] NOT NULL DEFAULT '{}',
    size bigint NOT NULL,
    internaldate double precision NOT NULL,
    blob_id text NOT NULL REFERENCES blobs (id),
    sender text NOT NULL DEFAULT '',
    subject text NOT NULL DEFAULT '',
    deleted_at double precision
);
CREATE UNIQUE INDEX messages_live ON messages (folder_id, uid) WHERE deleted_at IS NULL;
CREATE INDEX messages_modseq ON messages (folder_id, modseq) WHERE deleted_at IS NULL;
CREATE INDEX messages_by_blob ON messages (blob_id);
CREATE INDEX messages_deleted ON messages (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE vanished (
    folder_id bigint NOT NULL REFERENCES folders (id),
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    PRIMARY KEY (folder_id, uid)
);
CREATE INDEX vanished_modseq ON vanished (folder_id, modseq);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, aliases, content, queue with leases, folders and messages", BASE),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)), "numbered 1, 2, ..."


async def version(conn: AsyncConnection[Any]) -> int:
    """The database's schema version: 0 for an empty database."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: AsyncConnection[Any]) -> list[Migration]:
    """Bring the database up to ``SCHEMA_VERSION`` (``conn`` in autocommit mode); returns the
    migrations applied. One node at a time (module docstring)."""
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " why text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = await version(conn)
        if found > SCHEMA_VERSION:
            raise NewerSchema(
                f"the database is at schema version {found}, newer than this todoku knows"
                f" ({SCHEMA_VERSION}): upgrade todoku on this node"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= found:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_version (version, why) VALUES (%s, %s)",
                    (migration.version, migration.why),
                )
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
