"""``todoku fsck``: each kind of damage is injected into a real data directory, found, and repaired
without deleting message content; a second run then finds nothing."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.blobs import INLINE_LIMIT
from todoku.store.fsck import EXIT_CLEAN, EXIT_PROBLEMS, EXIT_REPAIRED, fsck
from todoku.store.sqlite import SqliteStore

ALICE = "alice@example.test"
BOB = "bob@example.test"
LONG_AGO = time.time() - 3600


# Most tests here damage message files: their content is past INLINE_LIMIT, so it is kept as
# files; the tests at the end do the same to small content kept in the index.
FILE_SIZED = "x" * INLINE_LIMIT + "\r\n"


def content(recipient: str, subject: str, received_id: str = "X1", pad: str = FILE_SIZED) -> bytes:
    return (
        f"Received: from client.example.net ([192.0.2.1])\r\n\tby mx.example.test (todoku) with ESMTP"
        f" id {received_id}\r\n\tfor <{recipient}>; Sat, 28 Nov 2026 03:00:00 +0000\r\n"
        f"From: <sender@example.net>\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n{pad}"
    ).encode()


def put(
    store: SqliteStore,
    mailboxes: tuple[str, ...],
    subject: str,
    remote: tuple[str, ...] = (),
    pad: str = FILE_SIZED,
) -> str:
    writer = store.new_blob()
    writer.write(content(mailboxes[0] if mailboxes else remote[0], subject, pad=pad))
    message = IncomingMessage(
        blob=writer.finish(),
        sender="sender@example.net",
        mailboxes=mailboxes,
        remote=tuple(RemoteRecipient(r) for r in remote),
        subject=subject,
    )
    return store.commit_sync(message)


@pytest.fixture(autouse=True)
def private_umask() -> Iterator[None]:
    """Files these tests plant in the data directory get the modes the server gives its own
    (0600/0700), so that only the damage each test means is found; the tests of the mode check
    set the umask they need themselves."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "data"
    store = SqliteStore(tmp_path)
    try:
        store.add_user(ALICE, "x")
        store.add_user(BOB, "x")
        for n in range(3):
            put(store, (ALICE,), f"alice {n}")
        put(store, (ALICE, BOB), "shared")
        put(store, (), "outbound", remote=("friend@remote.test",))
    finally:
        store.close()
    return tmp_path


def blob_path(data_dir: Path, blob_id: str) -> Path:
    return data_dir / "messages" / blob_id[:5] / blob_id


def blob_of(data_dir: Path, subject: str) -> str:
    conn = sqlite3.connect(data_dir / "todoku.db")
    try:
        row = conn.execute("SELECT blob_id FROM messages WHERE subject = ?", (subject,)).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT blob_id FROM queue WHERE sender = ?", ("sender@example.net",)
            ).fetchone()
        return str(row[0])
    finally:
        conn.close()


def sql(data_dir: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(data_dir / "todoku.db", isolation_level=None)
    try:
        return conn.execute(statement, args).fetchall()
    finally:
        conn.close()


def write_orphan(data_dir: Path, blob_id: str, data: bytes) -> Path:
    path = blob_path(data_dir, blob_id)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (LONG_AGO, LONG_AGO))  # older than the grace for commits in progress
    return path


def lost_and_found_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (data_dir / "lost+found").rglob("*") if p.is_file()}


def assert_clean_after(data_dir: Path) -> None:
    again = fsck(data_dir)
    assert again.problems == [], again.lines()
    assert again.exit_status == EXIT_CLEAN


def test_a_healthy_store_is_clean(data_dir: Path) -> None:
    report = fsck(data_dir)
    assert report.problems == []
    assert report.files_checked == 5
    assert report.mailboxes == 2
    assert report.queue_entries == 1
    assert report.exit_status == EXIT_CLEAN


def test_missing_file_drops_its_rows_and_names_what_was_lost(data_dir: Path) -> None:
    blob_id = blob_of(data_dir, "shared")
    blob_path(data_dir, blob_id).unlink()
    report = fsck(data_dir)
    assert [p.kind for p in report.problems] == ["missing"]
    assert report.exit_status == EXIT_PROBLEMS
    assert sql(data_dir, "SELECT COUNT(*) FROM messages WHERE blob_id = ?", blob_id) == [
        (2,)
    ]  # check only

    repaired = fsck(data_dir, repair=True)
    assert repaired.exit_status == EXIT_REPAIRED
    assert sorted(lost.mailbox for lost in repaired.lost) == [ALICE, BOB]
    assert {lost.subject for lost in repaired.lost} == {"shared"}
    assert "shared" in "\n".join(repaired.lines())
    assert sql(data_dir, "SELECT COUNT(*) FROM messages WHERE blob_id = ?", blob_id) == [(0,)]
    assert_clean_after(data_dir)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_file_goes_to_lost_and_found(data_dir: Path, damage: str) -> None:
    blob_id = blob_of(data_dir, "alice 1")
    path = blob_path(data_dir, blob_id)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0x20
    else:
        del data[-10:]
    path.write_bytes(bytes(data))
    report = fsck(data_dir)
    assert [(p.kind, p.what) for p in report.problems] == [("damaged", f"message file {blob_id}")]

    repaired = fsck(data_dir, repair=True)
    assert [lost.subject for lost in repaired.lost] == ["alice 1"]
    assert lost_and_found_files(data_dir) == {
        blob_id: bytes(data)
    }  # the bytes are kept as they were
    assert not path.exists()
    assert_clean_after(data_dir)


def test_orphan_is_reindexed_into_the_mailbox_it_was_for(data_dir: Path) -> None:
    orphan = write_orphan(data_dir, "0000000100000001", content(BOB, "orphaned"))
    report = fsck(data_dir)
    assert [(p.kind, p.what) for p in report.problems] == [
        ("orphan", "message file 0000000100000001")
    ]

    repaired = fsck(data_dir, repair=True)
    assert "re-indexed into bob@example.test as UID 2" in repaired.problems[0].repaired
    rows = sql(
        data_dir, "SELECT mailbox, uid, subject, size FROM messages WHERE blob_id = ?", orphan.name
    )
    assert rows == [(BOB, 2, "orphaned", len(orphan.read_bytes()))]
    assert_clean_after(data_dir)


def test_crash_leftover_and_unknown_mailbox_orphans_are_kept_aside(data_dir: Path) -> None:
    # The same message as "alice 2" under another Received id: the sender retried after a crash.
    leftover = content(ALICE, "alice 2", received_id="RETRY")
    write_orphan(data_dir, "0000000100000002", leftover)
    stranger = content("nobody@example.test", "stranger")
    write_orphan(data_dir, "0000000100000003", stranger)
    recent = write_orphan(data_dir, "0000000100000004", content(ALICE, "in flight"))
    os.utime(recent)  # just written: may be a commit in progress, left alone

    repaired = fsck(data_dir, repair=True)
    assert sorted(p.kind for p in repaired.problems) == ["orphan", "orphan"]
    assert lost_and_found_files(data_dir) == {
        "0000000100000002": leftover,
        "0000000100000003": stranger,
    }
    assert sql(data_dir, "SELECT COUNT(*) FROM messages WHERE mailbox = ?", ALICE) == [(4,)]
    assert recent.exists()


def test_counter_below_used_uid_is_rebuilt(data_dir: Path) -> None:
    inbox = "SELECT next_uid FROM folders WHERE owner = ? AND name = 'INBOX'"
    sql(data_dir, "UPDATE folders SET next_uid = 2 WHERE owner = ?", ALICE)
    report = fsck(data_dir)
    assert [(p.kind, p.what) for p in report.problems] == [("counter", f"folder INBOX of {ALICE}")]
    fsck(data_dir, repair=True)
    assert sql(data_dir, inbox, ALICE) == [(5,)]
    assert_clean_after(data_dir)


def test_an_expunged_uid_counts_as_used(data_dir: Path) -> None:
    """QRESYNC clients remember expunged UIDs: a UID above the live ones but expunged must not
    come again."""
    sql(
        data_dir,
        "INSERT INTO expunged (folder_id, uid, modseq) SELECT id, 9, 1 FROM folders WHERE owner = ?",
        ALICE,
    )
    report = fsck(data_dir, repair=True)
    assert [(p.kind, p.what) for p in report.problems] == [("counter", f"folder INBOX of {ALICE}")]
    assert sql(data_dir, "SELECT next_uid FROM folders WHERE owner = ?", ALICE) == [(10,)]


def test_modseq_below_one_given_is_raised(data_dir: Path) -> None:
    sql(data_dir, "UPDATE mail_users SET modseq = 1 WHERE address = ?", ALICE)
    report = fsck(data_dir)
    assert [(p.kind, p.what) for p in report.problems] == [("counter", f"mailbox {ALICE}")]
    fsck(data_dir, repair=True)
    (modseq,) = sql(data_dir, "SELECT modseq FROM mail_users WHERE address = ?", ALICE)[0]
    assert modseq > 1
    assert_clean_after(data_dir)


def test_unreferenced_content_and_broken_queue_entries(data_dir: Path) -> None:
    queued = blob_of(data_dir, "outbound")
    sql(data_dir, "DELETE FROM queue_recipients WHERE queue_id = ?", queued)
    alice0 = blob_of(data_dir, "alice 0")
    kept_bytes = blob_path(data_dir, alice0).read_bytes()
    sql(data_dir, "DELETE FROM messages WHERE blob_id = ?", alice0)  # index row lost

    report = fsck(data_dir)
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["queue", "unreferenced"]

    fsck(data_dir, repair=True)
    found = lost_and_found_files(data_dir)
    assert found[alice0] == kept_bytes
    assert queued in found  # the undeliverable entry's content is kept too
    assert_clean_after(data_dir)


def test_stray_file_is_moved_not_deleted(data_dir: Path) -> None:
    stray = data_dir / "messages" / "notes.txt"
    stray.write_text("someone left this here")
    report = fsck(data_dir, repair=True)
    assert [p.kind for p in report.problems] == ["stray"]
    assert lost_and_found_files(data_dir) == {"notes.txt": b"someone left this here"}
    assert_clean_after(data_dir)


def test_cli_exit_status_and_plain_words(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "todoku.toml"
    config.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{data_dir}"\n'
    )
    blob_path(data_dir, blob_of(data_dir, "alice 0")).unlink()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "todoku", "fsck", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    checked = run()
    assert checked.returncode == EXIT_PROBLEMS, checked.stderr
    assert "missing" in checked.stdout and "todoku fsck --repair" in checked.stdout
    repaired = run("--repair")
    assert repaired.returncode == EXIT_REPAIRED, repaired.stderr
    assert 'alice@example.test UID 1 from <sender@example.net> "alice 0"' in repaired.stdout
    clean = run()
    assert clean.returncode == EXIT_CLEAN
    assert "no problems found" in clean.stdout


def test_modes_open_to_other_users_are_reported_per_kind_and_repaired(
    data_dir: Path, tmp_path: Path
) -> None:
    # What an older version left under umask 022, and what an administrator's cp or chmod does.
    message_files = sorted(p for p in (data_dir / "messages").rglob("*") if p.is_file())
    wide = {
        data_dir: 0o755,
        message_files[0].parent: 0o755,
        data_dir / "todoku.db": 0o644,
        message_files[0]: 0o644,
        message_files[1]: 0o640,
        message_files[2]: 0o604,
    }
    (data_dir / "run").mkdir(mode=0o700)
    listeners = data_dir / "run" / "listeners.json"
    listeners.write_text("{}")
    wide[listeners] = 0o644
    for path, mode in wide.items():
        os.chmod(path, mode)
    outside = tmp_path / "outside.txt"  # a link is neither reported nor followed
    outside.write_text("not ours")
    os.chmod(outside, 0o644)
    os.symlink(outside, data_dir / "run" / "link")

    report = fsck(data_dir)
    assert [(p.kind, p.what) for p in report.problems] == [
        ("mode", "data directory"),
        ("mode", "directories"),
        ("mode", "database files"),
        ("mode", "message files"),
        ("mode", "other files"),
    ]
    assert report.problems[3].detail.startswith("3 open to other users, e.g. ")
    assert "should be 0600" in report.problems[3].detail
    assert report.exit_status == EXIT_PROBLEMS

    repaired = fsck(data_dir, repair=True)
    assert all(p.repaired for p in repaired.problems), repaired.lines()
    assert repaired.exit_status == EXIT_REPAIRED
    for path, mode in wide.items():
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    assert_clean_after(data_dir)


# ---------------------------------------------------------------- content kept in the index


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "small"
    store = SqliteStore(tmp_path)
    try:
        store.add_user(ALICE, "x")
        store.add_user(BOB, "x")
        for n in range(2):
            put(store, (ALICE,), f"alice {n}", pad="")
        put(store, (ALICE, BOB), "shared", pad="")
        put(store, (), "outbound", remote=("friend@remote.test",), pad="")
    finally:
        store.close()
    assert sql(tmp_path, "SELECT COUNT(*) FROM contents") == [(4,)]
    assert not any(p.is_file() for p in (tmp_path / "messages").rglob("*"))
    return tmp_path


def test_small_content_in_the_index_is_checked_and_clean(small_dir: Path) -> None:
    report = fsck(small_dir)
    assert report.problems == [], report.lines()
    assert report.files_checked == 4  # every checksum was computed


def test_damaged_content_in_the_index_is_kept_in_lost_and_found(small_dir: Path) -> None:
    blob_id = blob_of(small_dir, "shared")
    (data,) = sql(small_dir, "SELECT data FROM contents WHERE id = ?", blob_id)[0]
    damaged = bytes(data)[:-3]
    sql(small_dir, "UPDATE contents SET data = ? WHERE id = ?", damaged, blob_id)
    report = fsck(small_dir)
    assert [(p.kind, p.what) for p in report.problems] == [("damaged", f"message file {blob_id}")]

    repaired = fsck(small_dir, repair=True)
    assert sorted(lost.mailbox for lost in repaired.lost) == [ALICE, BOB]
    assert lost_and_found_files(small_dir) == {blob_id: damaged}  # the bytes, as they were
    assert sql(small_dir, "SELECT COUNT(*) FROM contents WHERE id = ?", blob_id) == [(0,)]
    assert_clean_after(small_dir)


def test_missing_content_row_drops_the_rows_that_name_it(small_dir: Path) -> None:
    blob_id = blob_of(small_dir, "alice 0")
    sql(small_dir, "DELETE FROM contents WHERE id = ?", blob_id)
    repaired = fsck(small_dir, repair=True)
    assert [p.kind for p in repaired.problems] == ["missing"]
    assert [lost.subject for lost in repaired.lost] == ["alice 0"]
    assert_clean_after(small_dir)


def test_orphan_content_row_is_reindexed_or_kept_aside(small_dir: Path) -> None:
    placed = content(BOB, "orphaned", pad="")
    stranger = content("nobody@example.test", "stranger", pad="")
    for blob_id, data, when in (
        ("0000000100000001", placed, LONG_AGO),
        ("0000000100000002", stranger, LONG_AGO),
        ("0000000100000003", placed, time.time()),  # just published: a filing in progress
    ):
        sql(
            small_dir,
            "INSERT INTO contents (id, data, created_at) VALUES (?, ?, ?)",
            blob_id,
            data,
            when,
        )
    report = fsck(small_dir)
    assert [(p.kind, p.what) for p in report.problems] == [
        ("orphan", "message content 0000000100000001"),
        ("orphan", "message content 0000000100000002"),
    ]
    repaired = fsck(small_dir, repair=True)
    assert "re-indexed into bob@example.test as UID 2" in repaired.problems[0].repaired
    assert sql(small_dir, "SELECT subject FROM messages WHERE blob_id = '0000000100000001'") == [
        ("orphaned",)
    ]
    assert lost_and_found_files(small_dir) == {"0000000100000002": stranger}
    left = sql(small_dir, "SELECT id FROM contents WHERE id LIKE '00000001%' ORDER BY id")
    assert left == [("0000000100000001",), ("0000000100000003",)]


def test_unreferenced_content_in_the_index_is_written_out_first(small_dir: Path) -> None:
    blob_id = blob_of(small_dir, "alice 1")
    (data,) = sql(small_dir, "SELECT data FROM contents WHERE id = ?", blob_id)[0]
    sql(small_dir, "DELETE FROM messages WHERE blob_id = ?", blob_id)
    repaired = fsck(small_dir, repair=True)
    assert [p.kind for p in repaired.problems] == ["unreferenced"]
    assert lost_and_found_files(small_dir) == {blob_id: bytes(data)}
    assert_clean_after(small_dir)
