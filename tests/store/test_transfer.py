"""``todoku import`` / ``todoku export``: Gmail-Takeout-style mbox and Dovecot/Thunderbird-style
Maildir round-trip byte for byte; importing twice adds nothing; stored copies are CRLF for POP3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from todoku.store.api import IncomingMessage
from todoku.store.sqlite import SqliteStore
from todoku.store.transfer import TransferError, export_mailbox, import_mailbox

ALICE = "alice@example.test"
BOB = "bob@example.test"

# Shaped like a Gmail Takeout export: numeric From-line id, "+0000" in the date, X-GM headers,
# LF line ends, mboxrd quoting (one and two levels), a base64 part.
TAKEOUT_MBOX = b"""From 1789012345678901234@xxx Wed Nov 26 10:00:00 +0000 2025
X-GM-THRID: 1789012345678901234
X-Gmail-Labels: Inbox,Important,Opened
Delivered-To: alice@example.test
Date: Wed, 26 Nov 2025 10:00:00 +0000
From: Bob <bob@example.org>
To: alice@example.test
Subject: first
Content-Type: text/plain; charset="UTF-8"

Hello Alice,
>From here on the line was quoted once.
>>From and this one twice.
A line with From in the middle stays.

From 1789012345678901299@xxx Thu Nov 27 08:30:05 +0000 2025
X-GM-THRID: 1789012345678901299
X-Gmail-Labels: Sent
Date: Thu, 27 Nov 2025 08:30:05 +0000
From: alice@example.test
To: Carol <carol@example.net>
Subject: =?UTF-8?B?44GT44KT44Gr44Gh44Gv?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset="UTF-8"

see attached

--b1
Content-Type: application/octet-stream; name="a.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
--b1--

From 1789012345678901300@xxx Fri Nov 28 01:02:03 +0000 2025
X-Gmail-Labels: Inbox
Date: Fri, 28 Nov 2025 01:02:03 +0000
From: Dave <dave@example.org>
Subject: empty line at the end of the body

last line, then an empty one

"""

# Shaped like a Dovecot / Thunderbird Maildir: LF files, S=/W= sizes and flags in the names.
MAILDIR_FILES = {
    "cur/1764150000.M101P2001.mail,S=155,W=162:2,S": (
        b"Date: Wed, 26 Nov 2025 09:40:00 +0000\nFrom: <erin@example.org>\nSubject: seen\n\nread it\n"
    ),
    "cur/1764150001.M102P2001.mail,S=170,W=178:2,FRS": (
        b"Date: Wed, 26 Nov 2025 09:41:00 +0000\nFrom: <frank@example.org>\nSubject: flagged, replied\n"
        b"\nFrom the start of a line, not an mbox: no quoting here\n"
    ),
    "new/1764150002.M103P2001.mail": (
        b"Date: Wed, 26 Nov 2025 09:42:00 +0000\nFrom: <gina@example.org>\nSubject: unread\n\nnew\n"
    ),
}


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "data")
    yield store  # type: ignore[misc]
    store.close()


def write_maildir(root: Path) -> Path:
    for relative, data in MAILDIR_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = int(relative.split("/")[1].split(".")[0])
        os.utime(path, (stamp, stamp))
    (root / "tmp").mkdir()
    (root / "dovecot-uidlist").write_text("3 V1764150000 N4\n")  # index files are not mail
    return root


def maildir_contents(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        f"{p.parent.name}/{p.name}": (p.read_bytes(), int(p.stat().st_mtime))
        for sub in ("cur", "new")
        for p in (root / sub).iterdir()
    }


def stored(store: SqliteStore, mailbox: str) -> list[bytes]:
    out = []
    for message in store.list_messages(mailbox):
        with store.open_blob(message.blob_id) as handle:
            out.append(handle.read())
    return out


def test_takeout_mbox_round_trips_byte_for_byte(store: SqliteStore, tmp_path: Path) -> None:
    source = tmp_path / "All mail Including Spam and Trash.mbox"
    source.write_bytes(TAKEOUT_MBOX)
    assert import_mailbox(store, ALICE, source).imported == 3

    messages = store.list_messages(ALICE)
    assert [m.subject for m in messages] == [
        "first",
        "こんにちは",
        "empty line at the end of the body",
    ]
    assert messages[1].received_at == 1764232205.0  # the From line's date, kept
    first = stored(store, ALICE)[0]
    assert first.startswith(b"X-GM-THRID: 1789012345678901234\r\n")  # CRLF, as POP3 sends it
    assert b"\r\nFrom here on the line was quoted once.\r\n>From and this one twice.\r\n" in first

    exported = tmp_path / "out.mbox"
    assert export_mailbox(store, ALICE, "mbox", exported).exported == 3
    assert exported.read_bytes() == TAKEOUT_MBOX


def test_import_is_idempotent(store: SqliteStore, tmp_path: Path) -> None:
    source = tmp_path / "in.mbox"
    source.write_bytes(TAKEOUT_MBOX)
    import_mailbox(store, ALICE, source)
    again = import_mailbox(store, ALICE, source)
    assert (again.imported, again.skipped) == (0, 3)
    assert len(store.list_messages(ALICE)) == 3


def test_dovecot_maildir_round_trips_with_flags_and_dates(
    store: SqliteStore, tmp_path: Path
) -> None:
    source = write_maildir(tmp_path / "Maildir")
    result = import_mailbox(store, ALICE, source)
    assert result.imported == 3
    assert all(data.count(b"\n") == data.count(b"\r\n") for data in stored(store, ALICE))
    assert import_mailbox(store, ALICE, source).imported == 0

    exported = tmp_path / "exported"
    export_mailbox(store, ALICE, "maildir", exported)
    assert maildir_contents(exported) == maildir_contents(source)  # names (flags), bytes, mtimes


def test_smtp_delivered_mail_survives_export_and_import(store: SqliteStore, tmp_path: Path) -> None:
    original = (
        b"Received: from c.example.net\r\n\tby mx.example.test (todoku) with ESMTP id 1\r\n"
        b"From: <x@example.net>\r\nSubject: by smtp\r\n\r\nFrom the first column\r\n>From quoted\r\n"
    )
    writer = store.new_blob()
    writer.write(original)
    store.commit_sync(
        IncomingMessage(blob=writer.finish(), sender="x@example.net", mailboxes=(ALICE,))
    )
    for fmt, target in (("mbox", tmp_path / "a.mbox"), ("maildir", tmp_path / "a.maildir")):
        export_mailbox(store, ALICE, fmt, target)
        box = f"{fmt}@example.test"
        import_mailbox(store, box, target)
        assert stored(store, box) == [original], fmt
    assert (tmp_path / "a.mbox").read_bytes().startswith(b"From x@example.net ")


def test_not_a_mailbox_is_a_clear_error(store: SqliteStore, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(TransferError, match="not an mbox file"):
        import_mailbox(store, ALICE, text)
    with pytest.raises(TransferError, match="not a Maildir folder"):
        import_mailbox(store, ALICE, tmp_path)


def test_cli_import_export(tmp_path: Path) -> None:
    config = tmp_path / "todoku.toml"
    config.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{tmp_path / "d"}"\n'
    )
    source = tmp_path / "in.mbox"
    source.write_bytes(TAKEOUT_MBOX)

    def todoku(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "todoku", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = todoku("import", ALICE, str(source))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"imported 3 messages into {ALICE}; 0 already there"
    assert todoku("import", ALICE, str(source)).stdout.strip().endswith("3 already there")
    out = todoku("export", ALICE, "--format", "mbox", str(tmp_path / "out.mbox"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.mbox").read_bytes() == TAKEOUT_MBOX
    missing = todoku("import", ALICE, str(tmp_path / "nope.mbox"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"todoku: {tmp_path / 'nope.mbox'}: no such file or directory"
    assert todoku("import", "x@elsewhere.test", str(source)).returncode == 2


async def test_maildir_flags_become_imap_flags_and_go_back_out_as_they_are_now(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Import into a named folder (made with its parent); the names' flags are IMAP flags; a
    flag changed over IMAP since shows in the exported name; other folders are left out."""
    from todoku.store.mailboxes import FLAGGED, SEEN, StoreMode

    source = write_maildir(tmp_path / "Maildir")
    assert import_mailbox(store, ALICE, source, folder="Archive/2025").imported == 3
    mailboxes = store.mailboxes()
    assert [f.name for f in await mailboxes.folders(ALICE)] == ["Archive", "Archive/2025", "INBOX"]
    messages = await mailboxes.messages(ALICE, "Archive/2025")
    names = sorted(MAILDIR_FILES)
    by_blob = {m.blob_id: m for m in messages}
    assert len(by_blob) == 3
    seen = sum(1 for m in messages if SEEN in m.flags)
    assert seen == sum(1 for name in names if ":2," in name and "S" in name.split(":2,")[1])
    assert seen > 0  # the fixture has seen mail, so this checks something
    unflagged = next(m for m in messages if FLAGGED not in m.flags)
    await mailboxes.store_flags(ALICE, "Archive/2025", [unflagged.uid], StoreMode.ADD, [FLAGGED])

    exported = tmp_path / "exported"
    export_mailbox(store, ALICE, "maildir", exported, folder="Archive/2025")
    after = maildir_contents(exported)
    before = maildir_contents(source)
    assert len(after) == 3
    changed = set(after) - set(before)
    assert len(changed) == 1
    [renamed] = changed
    assert renamed.startswith("cur/") and "F" in renamed.split(":2,")[1]
    assert export_mailbox(store, ALICE, "mbox", tmp_path / "inbox.mbox").exported == 0
    with pytest.raises(TransferError, match="no folder Nope"):
        export_mailbox(store, ALICE, "mbox", tmp_path / "x.mbox", folder="Nope")
