"""Issue 12, finding 4: under the common umask 022 the data directory was readable by every local
user (the database with every password hash, and every message). A real server, the backup and
the export commands, all run with umask 022, must create nothing open to group or others."""

from __future__ import annotations

import os
import smtplib
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import TodokuServer
from todoku.store.blobs import INLINE_LIMIT

ALICE = "alice@example.test"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The processes the tests start inherit this umask, the most common default."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def open_to_others(root: Path) -> list[str]:
    """Every directory and file under ``root`` (itself included) with a group or other bit."""
    wider = []
    for directory, _subdirs, names in os.walk(root):
        for path in [directory, *(os.path.join(directory, name) for name in names)]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                wider.append(f"{path} {stat.S_IMODE(mode):04o}")
    return wider


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_server_backup_and_export_create_nothing_others_can_read(
    umask_022: None, tmp_path: Path, make_server: Callable[..., TodokuServer]
) -> None:
    server = make_server(start=False)
    server.add_user(ALICE)
    server.start()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.sendmail(
            "someone@example.net", [ALICE], b"Subject: private\r\n\r\nfor alice only\r\n"
        )
        # And one past INLINE_LIMIT, kept as a file (the small one is in the index).
        large = b"Subject: large\r\n\r\n" + (b"x" * 78 + b"\r\n") * (INLINE_LIMIT // 80 + 1)
        client.sendmail("someone@example.net", [ALICE], large)

    data = server.data_dir
    messages = [p for p in (data / "messages").rglob("*") if p.is_file()]
    assert messages, "the message was not stored"
    # While the server runs, SQLite's journal files exist next to the database.
    for path in (data / "todoku.db", data / "todoku.db-wal", data / "todoku.db-shm", *messages):
        assert mode_of(path) == 0o600, path
    assert mode_of(data) == 0o700
    assert mode_of(data / "messages") == 0o700
    assert (data / "run" / "listeners.json").exists()
    assert open_to_others(data) == []

    backup = tmp_path / "backups" / "today"
    server.cli("backup", str(backup))
    assert (backup / "todoku.db").is_file() and (backup / "manifest.json").is_file()
    assert len([p for p in (backup / "messages").rglob("*") if p.is_file()]) == 2  # both kinds
    assert mode_of(backup) == 0o700
    assert open_to_others(backup) == []

    mbox = tmp_path / "alice.mbox"
    server.cli("export", ALICE, str(mbox), "--format", "mbox")
    assert mode_of(mbox) == 0o600
    maildir = tmp_path / "alice-maildir"
    server.cli("export", ALICE, str(maildir), "--format", "maildir")
    assert any((maildir / "cur").iterdir())
    assert open_to_others(maildir) == []
    assert open_to_others(data) == []  # nothing the commands did opened the data directory
