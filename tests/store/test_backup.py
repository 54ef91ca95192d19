"""``todoku backup`` under SMTP load, incremental runs, and ``todoku restore`` without duplicates."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import pytest

from tests.conftest import TodokuServer
from tests.durability.census import message_bytes
from todoku.store.api import IncomingMessage
from todoku.store.backup import backup
from todoku.store.sqlite import SqliteStore

ALICE = "alice@example.test"
BOB = "bob@example.test"


def mailbox_state(db: Path) -> set[tuple[str, int, int, str]]:
    """(mailbox, UIDVALIDITY, UID, SHA-256) of every message: what a POP3 client can tell apart."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT m.mailbox, f.uidvalidity, m.uid, bl.sha256 FROM messages m"
            " JOIN folders f ON f.id = m.folder_id JOIN blobs bl ON bl.id = m.blob_id"
        ).fetchall()
    finally:
        conn.close()
    return {(str(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows}


def tags_in(db: Path, data_dir: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        blob_ids = [r[0] for r in conn.execute("SELECT blob_id FROM messages")]
    finally:
        conn.close()
    tags = set()
    for blob_id in blob_ids:
        data = (data_dir / "messages" / blob_id[:5] / blob_id).read_bytes()
        tags.add(data.split(b"X-Crash-Tag: ", 1)[1].split(b"\r\n", 1)[0].decode())
    return tags


class Load:
    """SMTP senders running until stopped; ``acknowledged`` in the order the 250s came."""

    def __init__(self, server: TodokuServer, clients: int = 4) -> None:
        self.server = server
        self.stop = threading.Event()
        self.acknowledged: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.send, args=(n,), daemon=True) for n in range(clients)
        ]

    def send(self, client_no: int) -> None:
        with smtplib.SMTP("127.0.0.1", self.server.ports["smtp"], timeout=30) as client:
            for n in range(2000):  # bounded; normally stopped long before
                if self.stop.is_set():
                    return
                rcpt = [ALICE, BOB, ALICE][n % 3]
                tag = f"c{client_no}n{n}"
                client.sendmail(
                    "s@example.net", [rcpt], message_bytes(tag, "s@example.net", [rcpt], n % 30)
                )
                with self.lock:
                    self.acknowledged.append(tag)

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive()

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acknowledged) >= count, "the load never got going"


def new_server(make_server: Callable[..., TodokuServer]) -> TodokuServer:
    server = make_server(start=False, services=("smtp",))
    server.add_user(ALICE)
    server.add_user(BOB)
    server.start()
    return server


def test_online_backup_under_load_restores_identically(
    tmp_path: Path, make_server: Callable[..., TodokuServer]
) -> None:
    server = new_server(make_server)
    destination = tmp_path / "backup"
    with Load(server) as load:
        load.wait_for(30)
        before = set(load.acknowledged)
        first = server.cli("backup", str(destination))
        load.wait_for(len(load.acknowledged) + 20)
    assert "copied" in first.stdout
    manifest = json.loads((destination / "manifest.json").read_text())
    backed_up = mailbox_state(destination / "todoku.db")
    # Consistent: every file the snapshot names is there with its checksum; nothing acknowledged
    # before the backup started is missing.
    assert len(manifest["blobs"]) == len({sha for *_, sha in backed_up})
    assert before <= tags_in(destination / "todoku.db", destination)

    # Restore into an empty server: the same mailboxes, UIDVALIDITY, UIDs and bytes.
    fresh = make_server(start=False, services=("smtp",))
    restored = fresh.cli("restore", str(destination))
    assert f"restored {len(backed_up)} messages into 2 mailbox(es)" in restored.stdout
    assert mailbox_state(fresh.data_dir / "todoku.db") == backed_up
    assert "no problems found" in fresh.cli("fsck").stdout
    assert fresh.cli("user", "list").stdout.count("@example.test") == 2  # logins come back too

    # Incremental: only what arrived since is copied.
    total_now = len(mailbox_state(server.data_dir / "todoku.db"))
    second = server.cli("backup", str(destination))
    new_files = total_now - len(backed_up)
    assert f"copied {new_files} new files" in second.stdout, second.stdout
    assert f"{len(backed_up)} already there" in second.stdout
    assert mailbox_state(destination / "todoku.db") == mailbox_state(server.data_dir / "todoku.db")

    # Restoring into the server it came from adds nothing.
    again = server.cli("restore", str(destination))
    assert "restored 0 messages" in again.stdout
    assert f"{total_now} already present" in again.stdout


def test_restore_one_mailbox_into_a_running_server(
    tmp_path: Path, make_server: Callable[..., TodokuServer]
) -> None:
    server = new_server(make_server)
    with Load(server, clients=2) as load:
        load.wait_for(12)
    destination = tmp_path / "backup"
    server.cli("backup", str(destination))
    bob_before = {s for s in mailbox_state(server.data_dir / "todoku.db") if s[0] == BOB}

    target = new_server(make_server)  # running, with its own mail for alice
    with Load(target, clients=1) as load:
        load.wait_for(3)
    alice_target = {s for s in mailbox_state(target.data_dir / "todoku.db") if s[0] == ALICE}
    out = target.cli("restore", str(destination), "--mailbox", BOB)
    assert f"restored {len(bob_before)} messages into 1 mailbox(es)" in out.stdout
    after = mailbox_state(target.data_dir / "todoku.db")
    assert {(s[0], s[3]) for s in after if s[0] == BOB} >= {(s[0], s[3]) for s in bob_before}
    assert {s for s in after if s[0] == ALICE} == alice_target  # alice untouched
    assert "restored 0 messages" in target.cli("restore", str(destination), "--mailbox", BOB).stdout


def test_damaged_backup_is_refused_or_reported(
    tmp_path: Path, make_server: Callable[..., TodokuServer]
) -> None:
    server = new_server(make_server)
    with Load(server, clients=1) as load:
        load.wait_for(4)
    destination = tmp_path / "backup"
    server.cli("backup", str(destination))
    one = next((destination / "messages").glob("*/*"))
    one.write_bytes(one.read_bytes() + b"tampered\r\n")
    fresh = make_server(start=False, services=("smtp",))
    out = fresh.cli("restore", str(destination))
    assert f"WARNING: {one.name} in the backup does not match its checksum" in out.stdout

    with open(destination / "todoku.db", "ab") as handle:
        handle.write(b"\0")
    refused = fresh.cli("restore", str(destination), check=False)
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        == f"todoku: {destination / 'todoku.db'}: does not match the manifest's checksum"
    )
    missing = fresh.cli("restore", str(tmp_path / "nothing"), check=False)
    assert missing.returncode == 2 and "not a todoku backup" in missing.stderr


# ------------------------------------------------------------- crafted backups (issue 12, item 11)


def small_backup(tmp_path: Path) -> Path:
    """A real backup of two messages, made by the library (no server needed), four directories
    deep so that the crafted paths below land inside ``tmp_path``."""
    source = tmp_path / "source"
    store = SqliteStore(source)
    try:
        store.add_user(ALICE, "x")
        for n in range(2):
            writer = store.new_blob()
            writer.write(message_bytes(f"t{n}", "s@example.net", [ALICE]))
            store.commit_sync(
                IncomingMessage(
                    blob=writer.finish(),
                    sender="s@example.net",
                    mailboxes=(ALICE,),
                    subject=f"t{n}",
                )
            )
    finally:
        store.close()
    destination = tmp_path / "p" / "q" / "r" / "s" / "backup"
    backup(source, destination)
    return destination


def restore_into(tmp_path: Path, source: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path / "a" / "b" / "c" / "data"
    config = tmp_path / "todoku.toml"
    config.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{data}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "restore", str(source), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, data


def first_blob(backup_dir: Path) -> str:
    conn = sqlite3.connect(f"file:{backup_dir / 'todoku.db'}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT blob_id FROM messages ORDER BY uid").fetchone()[0])
    finally:
        conn.close()


def test_restore_refuses_a_content_id_that_names_a_path_outside(tmp_path: Path) -> None:
    source = small_backup(tmp_path)
    old = first_blob(source)
    crafted = "../../../x"
    conn = sqlite3.connect(source / "todoku.db", isolation_level=None)
    conn.execute("UPDATE blobs SET id = ? WHERE id = ?", (crafted, old))
    conn.execute("UPDATE messages SET blob_id = ? WHERE blob_id = ?", (crafted, old))
    conn.close()
    manifest = json.loads((source / "manifest.json").read_text())
    db = (source / "todoku.db").read_bytes()
    manifest["database"] = {"size": len(db), "sha256": hashlib.sha256(db).hexdigest()}
    (source / "manifest.json").write_text(json.dumps(manifest))
    # Where such a backup keeps that message's bytes, so the restore would go through with it.
    planted = Path(os.path.normpath(source / "messages" / crafted[:5] / crafted))
    planted.write_bytes((source / "messages" / old[:5] / old).read_bytes())

    result, data = restore_into(tmp_path, source)

    escaped = Path(os.path.normpath(data / "messages" / crafted[:5] / crafted))
    assert escaped == tmp_path / "x"  # where the old restore wrote it
    assert result.returncode == 2, result.stdout
    expected = (
        f"todoku: {source / 'todoku.db'}: content id '../../../x' is not one todoku makes"
        " (16 hex digits): a damaged or crafted backup; nothing was restored"
    )
    assert result.stderr.splitlines() == [expected]
    assert not escaped.exists()
    assert not any(data.rglob("*")), "something was written before the backup was refused"


@pytest.mark.parametrize("link", ["message file", "bucket"])
def test_restore_refuses_links_in_the_backup(tmp_path: Path, link: str) -> None:
    source = small_backup(tmp_path)
    blob_id = first_blob(source)
    file = source / "messages" / blob_id[:5] / blob_id
    # The link points at bytes that match the index: only where they come from is wrong.
    elsewhere = tmp_path / "elsewhere" / blob_id[:5]
    elsewhere.mkdir(parents=True)
    shutil.copytree(file.parent, elsewhere, dirs_exist_ok=True)
    if link == "message file":
        file.unlink()
        file.symlink_to(elsewhere / blob_id)
        named = file
    else:
        shutil.rmtree(file.parent)
        file.parent.symlink_to(elsewhere, target_is_directory=True)
        named = file.parent

    result, data = restore_into(tmp_path, source)

    assert result.returncode == 2, result.stdout
    expected = (
        f"todoku: {named}: not a {'regular file' if link == 'message file' else 'directory'}"
        " (a symbolic link?): refusing this backup; nothing was restored"
    )
    assert result.stderr.splitlines() == [expected]
    assert not (data / "todoku.db").exists()


def test_restore_does_not_hand_an_existing_message_to_another_mailbox(tmp_path: Path) -> None:
    """Issue 12 attack pass: a crafted backup named a message file the data directory already
    holds (its id is the queue id in every Received field) under another mailbox, with neither
    the file nor its checksum: the restore linked that mailbox to the other user's message."""
    from todoku.store.backup import restore

    source = small_backup(tmp_path)
    live = tmp_path / "source"  # the data directory the backup was made of, still holding it
    victim = first_blob(source)
    conn = sqlite3.connect(source / "todoku.db", isolation_level=None)
    conn.execute("UPDATE blobs SET sha256 = ? WHERE id = ?", ("0" * 64, victim))
    conn.execute("DELETE FROM messages WHERE blob_id != ?", (victim,))
    conn.execute("UPDATE messages SET mailbox = 'mallory@example.test'")
    conn.execute(
        "INSERT INTO folders (owner, name, uidvalidity, next_uid, highest_modseq)"
        " SELECT 'mallory@example.test', name, uidvalidity, next_uid, highest_modseq"
        " FROM folders WHERE owner = ? AND name = 'INBOX'",
        (ALICE,),
    )
    conn.execute(
        "UPDATE messages SET folder_id ="
        " (SELECT id FROM folders WHERE owner = 'mallory@example.test')"
    )
    conn.close()
    manifest = json.loads((source / "manifest.json").read_text())
    db = (source / "todoku.db").read_bytes()
    manifest["database"] = {"size": len(db), "sha256": hashlib.sha256(db).hexdigest()}
    (source / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(source / "messages" / victim[:5])

    result = restore(source, live, mailbox="mallory@example.test")

    rows = sqlite3.connect(live / "todoku.db").execute(
        "SELECT blob_id FROM messages WHERE mailbox = 'mallory@example.test'"
    )
    assert rows.fetchall() == []
    assert result.restored == 0 and result.damaged == [victim]


async def _mail_state(store: SqliteStore, user: str) -> dict[str, object]:
    mailboxes = store.mailboxes()
    folders = {}
    for f in await mailboxes.folders(user):
        messages = await mailboxes.messages(user, f.name)
        folders[f.name] = (
            f.uidvalidity,
            f.uidnext,
            f.special_use,
            f.subscribed,
            [(m.uid, m.flags, m.blob_id, m.internaldate) for m in messages],
        )
    deleted = [(d.folder, d.uid, d.blob_id) for d in await mailboxes.deleted(user)]
    vanished = {f: await mailboxes.vanished(user, f, 0) for f in folders}
    return {"folders": folders, "deleted": deleted, "vanished": vanished}


async def test_backup_and_restore_keep_folders_flags_and_uids(tmp_path: Path) -> None:
    from todoku.store.backup import restore
    from todoku.store.mailboxes import DELETED, FLAGGED, SEEN, StoreMode

    source = tmp_path / "source"
    store = SqliteStore(source)
    try:
        mailboxes = store.mailboxes()
        await mailboxes.ensure_defaults(ALICE)
        await mailboxes.create_folder(ALICE, "Projects/todoku")
        await mailboxes.subscribe(ALICE, "Projects/todoku", True)
        for n in range(4):
            writer = store.new_blob()
            writer.write(message_bytes(f"t{n}", "s@example.net", [ALICE]))
            store.commit_sync(IncomingMessage(blob=writer.finish(), sender="s", mailboxes=(ALICE,)))
        uids = [m.uid for m in await mailboxes.messages(ALICE, "INBOX")]
        await mailboxes.store_flags(ALICE, "INBOX", uids[:2], StoreMode.ADD, [SEEN, "$Work"])
        await mailboxes.copy(ALICE, "INBOX", [uids[0]], "Archive")
        await mailboxes.move(ALICE, "INBOX", [uids[1]], "Projects/todoku")
        await mailboxes.store_flags(ALICE, "INBOX", [uids[2]], StoreMode.ADD, [DELETED, FLAGGED])
        await mailboxes.expunge(ALICE, "INBOX")  # recoverable, and kept so by the backup
        before = await _mail_state(store, ALICE)
        modseq = await mailboxes.highest_modseq(ALICE)
    finally:
        store.close()
    destination = tmp_path / "backup"
    backup(source, destination)

    target = tmp_path / "target"
    result = restore(destination, target)
    assert result.restored == 5  # 2 in INBOX, 1 each in Archive and Projects/todoku, 1 deleted
    store = SqliteStore(target)
    try:
        after = await _mail_state(store, ALICE)
        for key in before:
            assert after[key] == before[key], key
        assert after["vanished"]["INBOX"] == sorted(uids[1:3])  # type: ignore[index]
        assert await store.mailboxes().highest_modseq(ALICE) > modseq  # never goes back
        assert after["folders"]["Archive"][4][0][1] == frozenset({SEEN, "$Work"})  # type: ignore[index]
    finally:
        store.close()
    assert "restored 0 messages" in restore(destination, target).lines()[0]
