"""A fault at each storage step (write, fsync file, rename, fsync dir, DB commit), injected through
the store's ``StorageFaults`` hook, with the outcome ``store/blobs.py`` documents for that step.

Two kinds of fault: an error (ENOSPC, EIO) the server sees and answers, after which nothing of the
message may remain and the store must work again; and a simulated crash (the process stops at
that step: no cleanup runs), after which a restart must leave either nothing, an orphan file that
``fsck`` reports, or the whole message, never a row without its data.

Content larger than ``INLINE_LIMIT`` takes every step; smaller content is written inside the
database transaction, so only the commit step exists for it, and a fault there leaves nothing:
no file, no ``contents`` row.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from todoku.store.api import IncomingMessage, StorageFull
from todoku.store.blobs import (
    INLINE_LIMIT,
    STEP_DB_COMMIT,
    STEP_FSYNC_DIR,
    STEP_FSYNC_FILE,
    STEP_RENAME,
    STEP_WRITE,
)
from todoku.store.sqlite import SqliteStore

STEPS = (STEP_WRITE, STEP_FSYNC_FILE, STEP_RENAME, STEP_FSYNC_DIR, STEP_DB_COMMIT)
CONTENT = b"Subject: fault\r\n\r\n" + b"body line\r\n" * (INLINE_LIMIT // 11 + 1)
SMALL = b"Subject: fault\r\n\r\n" + b"body line\r\n" * 100


class SimulatedCrash(BaseException):
    """Not an Exception: like a real crash, it bypasses every ``except Exception`` cleanup."""


class FailAt:
    def __init__(self, step: str, fault: BaseException) -> None:
        self.step = step
        self.fault = fault
        self.fired = 0

    def before(self, step: str, path: Path) -> None:
        if step == self.step and not self.fired:
            self.fired += 1
            raise self.fault


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def row_count(store: SqliteStore) -> tuple[int, int]:
    conn = store._conn()
    return (
        conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0],
        conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0],
    )


def content_rows(store: SqliteStore) -> int:
    return int(store._conn().execute("SELECT COUNT(*) FROM contents").fetchone()[0])


def incoming(store: SqliteStore, content: bytes = CONTENT) -> IncomingMessage:
    writer = store.new_blob()
    writer.write(content)
    return IncomingMessage(
        blob=writer.finish(), sender="s@example.net", mailboxes=("a@example.test",)
    )


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
async def test_error_at_each_step_leaves_nothing_and_store_recovers(
    tmp_path: Path, step: str, code: int
) -> None:
    faults = FailAt(step, OSError(code, "injected"))
    store = SqliteStore(tmp_path, faults)
    try:
        with pytest.raises(OSError) as raised:
            await store.commit(incoming(store))
        assert faults.fired == 1
        if code == errno.ENOSPC or step in (STEP_RENAME, STEP_FSYNC_DIR, STEP_DB_COMMIT):
            # ENOSPC always, and any failure once content is complete, is "try again later".
            assert isinstance(raised.value, StorageFull)
        assert files_under(tmp_path / "tmp") == []
        assert files_under(tmp_path / "messages") == []
        assert row_count(store) == (0, 0)
        # The fault is gone ("space came back"): the same store accepts the next message.
        await store.commit(incoming(store))
        assert row_count(store) == (1, 1)
        assert len(files_under(tmp_path / "messages")) == 1
    finally:
        store.close()


# What a crash just before each step leaves after restart (start-up sweeps tmp/).
CRASH_OUTCOMES = {
    STEP_WRITE: "nothing",
    STEP_FSYNC_FILE: "nothing",
    STEP_RENAME: "nothing",
    STEP_FSYNC_DIR: "orphan",  # renamed, no row: fsck reports it; the client got no 250
    STEP_DB_COMMIT: "orphan",
}


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_each_step_never_leaves_a_row_without_data(tmp_path: Path, step: str) -> None:
    store = SqliteStore(tmp_path, FailAt(step, SimulatedCrash()))
    with pytest.raises(SimulatedCrash):
        store.commit_sync(incoming(store))
    store.close()

    restarted = SqliteStore(tmp_path)  # what ``todoku serve`` does at start-up
    restarted.blobs.sweep_tmp()
    try:
        assert files_under(tmp_path / "tmp") == []
        assert row_count(restarted) == (0, 0)
        published = files_under(tmp_path / "messages")
        if CRASH_OUTCOMES[step] == "nothing":
            assert published == []
        else:
            assert len(published) == 1
            assert published[0].read_bytes() == CONTENT
    finally:
        restarted.close()


@pytest.mark.parametrize("content", [CONTENT, SMALL])
def test_without_a_fault_the_message_is_whole(tmp_path: Path, content: bytes) -> None:
    store = SqliteStore(tmp_path)
    try:
        store.commit_sync(incoming(store, content))
        (message,) = store.list_messages("a@example.test")
        with store.open_blob(message.blob_id) as handle:
            assert handle.read() == content
        assert content_rows(store) == (1 if content is SMALL else 0)
    finally:
        store.close()


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
async def test_small_content_fails_only_at_the_commit_and_leaves_nothing(
    tmp_path: Path, step: str, code: int
) -> None:
    faults = FailAt(step, OSError(code, "injected"))
    store = SqliteStore(tmp_path, faults)
    try:
        if step != STEP_DB_COMMIT:  # no file, no directory: those steps do not happen
            await store.commit(incoming(store, SMALL))
            assert faults.fired == 0 and files_under(tmp_path / "messages") == []
            assert row_count(store) == (1, 1) and content_rows(store) == 1
            return
        with pytest.raises(StorageFull):
            await store.commit(incoming(store, SMALL))
        assert row_count(store) == (0, 0) and content_rows(store) == 0
        await store.commit(incoming(store, SMALL))
        assert row_count(store) == (1, 1) and content_rows(store) == 1
    finally:
        store.close()


def test_crash_at_the_commit_of_small_content_leaves_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, FailAt(STEP_DB_COMMIT, SimulatedCrash()))
    with pytest.raises(SimulatedCrash):
        store.commit_sync(incoming(store, SMALL))
    store.close()
    restarted = SqliteStore(tmp_path)
    try:
        assert row_count(restarted) == (0, 0) and content_rows(restarted) == 0
        assert files_under(tmp_path / "messages") == files_under(tmp_path / "tmp") == []
    finally:
        restarted.close()
