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
from todoku.store.datadir import SCHEMA_VERSION, open_store
from todoku.store.sqlite import SqliteStore

FIXTURE = Path(__file__).parent / "fixtures" / "schema0-datadir.tar.gz"
ALICE = "alice@example.test"


def unpack(root: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(root, filter="data")
    return root / "data"


def snapshot(db: Path) -> dict[str, Any]:
    """What must survive, read with plain SQL (not through the store being tested)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "users": conn.execute("SELECT address, password_hash FROM users ORDER BY 1").fetchall(),
            "aliases": conn.execute("SELECT source, target FROM aliases ORDER BY 1").fetchall(),
            "mailboxes": conn.execute("SELECT * FROM mailboxes ORDER BY 1").fetchall(),
            "messages": conn.execute(
                "SELECT id, mailbox, uid, blob_id, size, deleted_at FROM messages ORDER BY id"
            ).fetchall(),
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


def test_upgrade_keeps_mail_users_queue_and_a_copy_until_the_next_start(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    before = snapshot(data / "todoku.db")
    keys = {p.name: p.read_bytes() for p in (data / "dkim" / "example.test").iterdir()}
    config = load_config(write_config(tmp_path, domains=["example.test"]))
    assert config.data_dir == data

    store = open_store(config, server_start=True)
    try:
        assert store.upgraded_from == 0
        copy = data / f"todoku.db.before-v{SCHEMA_VERSION}"
        assert snapshot(copy) == before and version(copy) == 0  # the index as it was
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
