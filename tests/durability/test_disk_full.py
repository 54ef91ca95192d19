"""Disk full for real: the data directory on a small tmpfs, filled up while the server runs.

SMTP must answer ``452 4.3.1`` (RFC 3463: mail system full), keep running, keep what it stored,
POP3 must go on serving what is stored, and SMTP accepts mail again by itself once space is freed. Needs root to mount; skipped otherwise.
"""

from __future__ import annotations

import errno
import poplib
import smtplib
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, TodokuServer
from tests.durability.census import message_bytes

ALICE = "alice@example.test"


def send(server: TodokuServer, tag: str, filler: int = 0) -> tuple[int, bytes]:
    """(code, text) of the final reply to DATA; 250 when stored."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        try:
            client.sendmail(
                "s@example.net", [ALICE], message_bytes(tag, "s@example.net", [ALICE], filler)
            )
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, exc.smtp_error
        return 250, b""


def fill(directory: Path) -> Path:
    """Write until ENOSPC; returns the filler file (delete it to give the space back)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file would try again to write its unwritten tail when it is
    # closed, and raise ENOSPC outside the try below (seen in CI).
    with open(filler, "wb", buffering=0) as handle:
        try:
            # One write at a time until ENOSPC; bounded: 640 MiB, far above the mount size.
            for _ in range(10_000):  # noqa: FURB122
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def pop3_read_all(server: TodokuServer) -> list[bytes]:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    try:
        client.user(ALICE)
        client.pass_(PASSWORD)
        count = len(client.list()[1])
        return [b"\r\n".join(client.retr(n)[1]) for n in range(1, count + 1)]
    finally:
        client.quit()


def stored_tags(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{data_dir / 'todoku.db'}?mode=ro", uri=True)
    try:
        # rstrip: ingest.scan_headers currently keeps the CR of the Subject line (reported).
        return [
            row[0].rstrip() for row in conn.execute("SELECT subject FROM messages ORDER BY uid")
        ]
    finally:
        conn.close()


def test_disk_full_answers_452_and_recovers(
    tmp_path: Path, make_server: Callable[..., TodokuServer]
) -> None:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    server = None
    try:
        server = make_server(
            start=False, services=("smtp", "pop3"), data_dir=str(mount_point / "data")
        )
        config = server.config_path.read_text()
        server.config_path.write_text(
            config.replace("[auth]\n", "[auth]\nallow_plaintext_on_loopback = true\n")
        )
        server.data_dir = mount_point / "data"  # the fixture assumes <root>/data otherwise
        server.add_user(ALICE)
        server.start()
        assert send(server, "before") == (250, b"")

        filler = fill(mount_point)
        replies = [send(server, f"full{n}", filler=200) for n in range(5)]
        for code, text in replies:
            assert code == 452, replies
            assert text.startswith(b"4.3.1"), replies
        assert server.process is not None and server.process.poll() is None, "the server died"
        assert list((server.data_dir / "tmp").iterdir()) == [], "partial content left behind"
        (before,) = pop3_read_all(server)  # reading needs no space
        assert b"end of before" in before

        filler.unlink()  # space comes back: no restart, no admin action
        assert send(server, "after", filler=200) == (250, b"")
        assert stored_tags(server.data_dir) == ["crash before", "crash after"]
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
