"""Issue 12: the queue keeps who submitted each entry (the one fact DKIM signing rests on), and a
database from before the column existed opens and reads as it did: its entries as not submitted."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.sqlite import SqliteStore


def queue(store: SqliteStore, content: bytes, submitted_by: str | None) -> str:
    writer = store.new_blob()
    writer.write(content)
    return store.commit_sync(
        IncomingMessage(
            blob=writer.finish(),
            sender="alice@example.test",
            remote=(RemoteRecipient("bob@remote.test"),),
            received_at=time.time(),
            submitted_by=submitted_by,
        )
    )


def test_submitted_by_round_trips_and_older_databases_migrate(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    before = queue(
        store, b"Subject: old\r\n\r\nqueued before the upgrade\r\n", "alice@example.test"
    )
    store.close()
    # The database as the previous release left it: the same queue table without the column.
    with sqlite3.connect(tmp_path / "todoku.db") as conn:
        conn.execute("ALTER TABLE queue DROP COLUMN submitted_by")
    store = SqliteStore(tmp_path)
    try:
        old = store.get_queue_entry(before)
        assert old is not None and old.submitted_by is None
        assert [r.address for r in old.recipients] == ["bob@remote.test"]
        submitted = queue(store, b"Subject: new\r\n\r\nsubmitted\r\n", "alice@example.test")
        forwarded = queue(store, b"Subject: mx\r\n\r\nforwarded\r\n", None)
        by_id = {e.id: e.submitted_by for e in store.list_queue()}
        assert by_id == {before: None, submitted: "alice@example.test", forwarded: None}
    finally:
        store.close()
