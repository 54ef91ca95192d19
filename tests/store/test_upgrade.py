"""Issue 16: upgrades. The fixture is a data directory written by todoku at commit 8399444,
before the schema version existed (fixtures/make_schema0.sh rebuilds it): two users, an alias,
three messages for alice (one deleted by POP3's DELE), one message queued for another domain,
DKIM keys. Opening it migrates it in place after a consistent copy of the index; the next server
start removes the copy; an index from a newer todoku is refused with one line and exit 2."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config
from todoku.config import ConfigError, load_config
from todoku.store.backends import open_store
from todoku.store.datadir import SCHEMA_VERSION
from todoku.store.sqlite import SqliteStore

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "schema0-datadir.tar.gz"
# The same data written by today's main before folders (make_schema2.sh): schema 2.
FIXTURE_2 = FIXTURES / "schema2-datadir.tar.gz"
ALICE = "alice@example.test"


def unpack(root: Path, fixture: Path = FIXTURE) -> Path:
    with tarfile.open(fixture) as tar:
        tar.extractall(root, filter="data")
    return root / "data"


def snapshot(db: Path) -> dict[str, Any]:
    """What must survive, read with plain SQL (not through the store being tested). The mail is
    read from either schema: before folders (``mailboxes``) and after (INBOX folders)."""
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "folders" in tables:
            boxes = "SELECT owner, uidvalidity, next_uid FROM folders WHERE name = 'INBOX'"
            mail = (
                "SELECT m.id, m.mailbox, f.uidvalidity, m.uid, m.blob_id, m.size, m.deleted_at"
                " FROM messages m JOIN folders f ON f.id = m.folder_id ORDER BY m.id"
            )
        else:
            boxes = "SELECT address, uidvalidity, next_uid FROM mailboxes"
            mail = (
                "SELECT m.id, m.mailbox, b.uidvalidity, m.uid, m.blob_id, m.size, m.deleted_at"
                " FROM messages m JOIN mailboxes b ON b.address = m.mailbox ORDER BY m.id"
            )
        return {
            "users": conn.execute("SELECT address, password_hash FROM users ORDER BY 1").fetchall(),
            "aliases": conn.execute("SELECT source, target FROM aliases ORDER BY 1").fetchall(),
            "mailboxes": conn.execute(boxes + " ORDER BY 1").fetchall(),
            "messages": conn.execute(mail).fetchall(),
            "queue": conn.execute("SELECT id, blob_id, sender FROM queue").fetchall(),
            "queue_recipients": conn.execute(
                "SELECT queue_id, address, state FROM queue_recipients"
            ).fetchall(),
        }
    finally:
        conn.close()


def version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_fixture_is_an_old_small_data_directory(tmp_path: Path) -> None:
    assert FIXTURE.stat().st_size < 200_000
    data = unpack(tmp_path)
    assert version(data / "todoku.db") == 0
    columns = {
        r[1] for r in sqlite3.connect(data / "todoku.db").execute("PRAGMA table_info(queue)")
    }
    assert "submitted_by" not in columns  # so the upgrade really has something to do


@pytest.mark.parametrize(("fixture", "old_version"), [(FIXTURE, 0), (FIXTURE_2, 2)])
def test_upgrade_keeps_mail_users_queue_and_a_copy_until_the_next_start(
    tmp_path: Path, fixture: Path, old_version: int
) -> None:
    data = unpack(tmp_path, fixture)
    before = snapshot(data / "todoku.db")
    keys = {p.name: p.read_bytes() for p in (data / "dkim" / "example.test").iterdir()}
    config = load_config(write_config(tmp_path, domains=["example.test"]))
    assert config.data_dir == data

    store = open_store(config, server_start=True)
    try:
        assert store.upgraded_from == old_version
        copy = data / f"todoku.db.before-v{SCHEMA_VERSION}"
        assert snapshot(copy) == before and version(copy) == old_version  # the index as it was
        assert copy.stat().st_mode & 0o077 == 0
        assert snapshot(data / "todoku.db") == before
        assert version(data / "todoku.db") == SCHEMA_VERSION

        live = store.list_messages(ALICE)
        assert [m.uid for m in live] == [1, 3]
        [deleted] = store.list_deleted(ALICE)
        assert deleted.uid == 2
        uidls = [m.unique_id for m in live]
        bodies = []
        for m in live:
            with store.open_blob(m.blob_id) as handle:
                bodies.append(handle.read())
        assert b"Subject: message 1" in bodies[0] and b"Subject: message 3" in bodies[1]
        [entry] = store.list_queue()
        assert entry.sender == ALICE and entry.submitted_by is None
        assert [r.address for r in entry.recipients] == ["carol@remote.test"]
        assert {u.address for u in store.list_users()} == {ALICE, "bob@example.test"}
        assert store.alias_targets("postmaster@example.test") == [ALICE]
        assert store.undelete(ALICE, None, None) == 1  # deleted mail still comes back (new UID)
    finally:
        store.close()
    assert {p.name: p.read_bytes() for p in (data / "dkim" / "example.test").iterdir()} == keys

    # A command (cron's sendmail, queue list) is not a start: the copy stays.
    open_store(config).close()
    assert copy.exists()
    # The next server start on the migrated index removes it; nothing else changes.
    store = open_store(config, server_start=True)
    try:
        assert store.upgraded_from is None
        assert not copy.exists()
        after = [m.unique_id for m in store.list_messages(ALICE)]
        assert after[:2] == uidls and len(after) == 3
    finally:
        store.close()


def test_a_fresh_index_is_current_and_makes_no_copy(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "data").close()
    assert version(tmp_path / "data" / "todoku.db") == SCHEMA_VERSION
    store = SqliteStore(tmp_path / "data")
    assert store.upgraded_from is None
    store.close()
    assert not list((tmp_path / "data").glob("todoku.db.before-*"))


def test_a_newer_index_is_refused_with_one_line_and_exit_2(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    conn = sqlite3.connect(data / "todoku.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = (data / "todoku.db").read_bytes()
    config_path = write_config(tmp_path, domains=["example.test"])
    expected = (
        f"this data directory was written by a newer todoku (schema {SCHEMA_VERSION + 1});"
        " upgrade todoku or restore a backup"
    )
    with pytest.raises(ConfigError, match="newer todoku"):
        open_store(load_config(config_path))
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "user", "list", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr
    assert (data / "todoku.db").read_bytes() == before  # untouched
    assert not list(data.glob("todoku.db.before-*"))


def test_upgraded_users_are_not_administrators_until_made_so(tmp_path: Path) -> None:
    """Migration 2 (users.admin): nobody becomes an administrator by upgrading."""
    data = unpack(tmp_path)
    store = SqliteStore(data)
    try:
        assert store.upgraded_from == 0
        assert [u.admin for u in store.list_users()] == [False, False]
        assert store.set_admin(ALICE, True)
        assert not store.set_admin("nobody@example.test", True)
        user = store.get_user(ALICE)
        assert user is not None and user.admin
    finally:
        store.close()
    conn = sqlite3.connect(data / "todoku.db")
    try:
        admins = conn.execute("SELECT address FROM users WHERE admin = 1").fetchall()
    finally:
        conn.close()
    assert admins == [(ALICE,)]


def test_migrations_are_one_numbered_list() -> None:
    from todoku.store.migrations import MIGRATIONS

    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("fixture", [FIXTURE, FIXTURE_2])
async def test_mail_moves_into_inbox_with_pop3_uidls_and_deleted_mail_kept(
    tmp_path: Path, fixture: Path
) -> None:
    """Migration 3 (folders, flags, MODSEQ): every message lands in its owner's INBOX with its
    UID and UIDVALIDITY, so POP3 UIDLs stay exactly the same; mail POP3 deleted is still
    recoverable, into INBOX; IMAP's interface works on the migrated index; fsck finds nothing."""
    from todoku.store.fsck import fsck
    from todoku.store.mailboxes import INBOX, SEEN, BlobRef, StoreMode

    data = unpack(tmp_path, fixture)
    conn = sqlite3.connect(data / "todoku.db")
    uidvalidity, next_uid = conn.execute(
        "SELECT uidvalidity, next_uid FROM mailboxes WHERE address = ?", (ALICE,)
    ).fetchone()
    old_uidls = [
        f"{uidvalidity}.{r[0]}"
        for r in conn.execute(
            "SELECT uid FROM messages WHERE mailbox = ? AND deleted_at IS NULL ORDER BY uid",
            (ALICE,),
        )
    ]
    conn.close()
    store = SqliteStore(data)
    try:
        assert [row[2] for row in store.list_maildrop(ALICE)] == old_uidls
        mailboxes = store.mailboxes()
        [inbox] = await mailboxes.folders(ALICE)
        assert (inbox.name, inbox.uidvalidity, inbox.uidnext) == (INBOX, uidvalidity, next_uid)
        assert (inbox.messages, inbox.unseen) == (2, 2)
        [gone] = await mailboxes.deleted(ALICE)
        assert (gone.folder, gone.uid) == (INBOX, 2)
        token = await mailboxes.highest_modseq(ALICE)
        await mailboxes.ensure_defaults(ALICE)
        first = (await mailboxes.messages(ALICE, INBOX))[0]
        stored = await mailboxes.store_flags(ALICE, INBOX, [first.uid], StoreMode.ADD, [SEEN])
        assert stored.changed[0].modseq > token
        moved = await mailboxes.move(ALICE, INBOX, [first.uid], "Archive")
        assert len(moved.uids) == 1
        blob = BlobRef(first.blob_id, first.size, "")  # the same content appended again
        appended = await mailboxes.append(ALICE, "Drafts", blob)
        assert appended.uid == 1
        assert await mailboxes.undelete(ALICE) == 1
        assert [m.uid for m in await mailboxes.messages(ALICE, INBOX)] == [3, next_uid]
    finally:
        store.close()
    report = fsck(data)
    # (The fixture's files come out of the archive with the umask's modes: not this test's.)
    assert [p for p in report.problems if p.kind != "mode"] == []


def test_an_upgrade_that_fails_half_way_leaves_the_old_index_and_runs_again(
    tmp_path: Path,
) -> None:
    """Migration 3 is one transaction: a failure inside it (here a trigger refusing a write the
    migration makes) leaves the index exactly as it was, at schema 2; the next open migrates
    it. Messages whose address had lost its mailbox record keep their UIDs in a new INBOX."""
    data = unpack(tmp_path, FIXTURE_2)
    db = data / "todoku.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("DELETE FROM mailboxes WHERE address = ?", (ALICE,))  # as a damaged index
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON mailboxes BEGIN SELECT RAISE(ABORT, 'fault'); END"
    )
    conn.close()
    before = sqlite3.connect(db).execute("SELECT * FROM messages ORDER BY id").fetchall()
    with pytest.raises(sqlite3.IntegrityError, match="fault"):
        SqliteStore(data)
    config = load_config(write_config(tmp_path, domains=["example.test"]))
    with pytest.raises(ConfigError, match="cannot open or upgrade todoku.db .fault.; nothing"):
        open_store(config)  # the server and the commands: one line, exit 2
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert version(db) == 2
        assert conn.execute("SELECT * FROM messages ORDER BY id").fetchall() == before
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "folders" not in tables
        conn.execute("DROP TRIGGER refuse")
    finally:
        conn.close()
    store = SqliteStore(data)
    try:
        assert version(db) == SCHEMA_VERSION
        assert [m.uid for m in store.list_messages(ALICE)] == [1, 3]
        assert [m.uid for m in store.list_deleted(ALICE)] == [2]
    finally:
        store.close()
