"""IMAP with real clients no one here wrote (Debian's isync/mbsync, offlineimap3, fetchmail,
getmail6, neomutt): mail delivered over SMTP, synchronised, flagged, moved and deleted by the
client, and the result checked from another session with Python's imaplib."""

from __future__ import annotations

import imaplib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context, require_tool
from tests.net.test_imap import ALICE, deliver

pytestmark = pytest.mark.interop


def imaps(server: TodokuServer) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=client_tls_context(), timeout=30
    )
    client.login(ALICE, PASSWORD)
    return client


def flags_by_subject(server: TodokuServer, folder: str) -> dict[str, bytes]:
    client = imaps(server)
    client.select(folder, readonly=True)
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    assert typ == "OK", data
    out: dict[str, bytes] = {}
    for item in data:
        if isinstance(item, tuple):
            subject = item[1].decode().strip().removeprefix("Subject: ")
            out[subject] = item[0]
    return out


def run(args: list[str], home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HOME": str(home)}
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        args, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


def maildir_files(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).glob("*"))


def test_mbsync_syncs_both_ways_flags_moves_and_deletions(
    server: TodokuServer, tmp_path: Path
) -> None:
    mbsync = require_tool("mbsync")
    for subject in ("keep", "read-me", "delete-me", "move-me"):
        deliver(server, subject)
    home = tmp_path / "home"
    local = home / "Mail"
    local.mkdir(parents=True)
    cert = server.data_dir / "tls" / "cert.pem"
    rc = home / ".mbsyncrc"
    rc.write_text(
        f"IMAPAccount todoku\nHost 127.0.0.1\nPort {server.ports['imaps']}\nUser {ALICE}\n"
        f'Pass "{PASSWORD}"\nSSLType IMAPS\nCertificateFile {cert}\n\n'
        "IMAPStore far\nAccount todoku\n\n"
        f"MaildirStore near\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel mail\nFar :far:\nNear :near:\nPatterns INBOX Archive\nCreate Both\n"
        "Expunge Both\nSync All\nSyncState *\n"
    )
    run([mbsync, "-c", str(rc), "-a"], home)
    inbox = maildir_files(local / "INBOX")
    assert len(inbox) == 4
    by_subject = {}
    for path in inbox:
        subject = next(
            line for line in path.read_text().splitlines() if line.startswith("Subject:")
        )
        by_subject[subject.removeprefix("Subject: ")] = path
    # Locally: read one (the maildir "S" flag), delete one, move one to Archive.
    read = by_subject["read-me"]
    seen_name = read.name.split(":2,")[0] + ":2,S"
    read.rename(local / "INBOX" / "cur" / seen_name)
    by_subject["delete-me"].unlink()
    moved = by_subject["move-me"]
    moved.rename(local / "Archive" / "cur" / moved.name.split(",U=")[0].split(":2,")[0])
    run([mbsync, "-c", str(rc), "-a"], home)
    on_server = flags_by_subject(server, "INBOX")
    assert set(on_server) == {"keep", "read-me"}
    assert b"\\Seen" in on_server["read-me"] and b"\\Seen" not in on_server["keep"]
    assert set(flags_by_subject(server, "Archive")) == {"move-me"}
    # And the other way: a flag set on the server reaches the maildir.
    client = imaps(server)
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Flagged)")
    client.logout()
    run([mbsync, "-c", str(rc), "-a"], home)
    names = [p.name for p in maildir_files(local / "INBOX")]
    assert any(n.split(":2,")[1].startswith("F") for n in names), names


def test_offlineimap_mirrors_the_folders(server: TodokuServer, tmp_path: Path) -> None:
    offlineimap = require_tool("offlineimap")
    deliver(server, "for offlineimap")
    home = tmp_path / "home"
    home.mkdir()
    cert = server.data_dir / "tls" / "cert.pem"
    rc = home / ".offlineimaprc"
    rc.write_text(
        "[general]\naccounts = todoku\nmetadata = " + str(home / "meta") + "\n\n"
        "[Account todoku]\nlocalrepository = local\nremoterepository = remote\n\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {home / 'Mail'}\n\n"
        "[Repository remote]\ntype = IMAP\nremotehost = localhost\n"
        f"remoteport = {server.ports['imaps']}\nremoteuser = {ALICE}\nremotepass = {PASSWORD}\n"
        f"ssl = yes\nsslcacertfile = {cert}\n"
    )
    result = run([offlineimap, "-c", str(rc), "-o", "-u", "basic"], home)
    assert "ERROR" not in result.stdout + result.stderr
    folders = {p.name for p in (home / "Mail").iterdir()}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= folders
    [message] = maildir_files(home / "Mail" / "INBOX")
    assert "Subject: for offlineimap" in message.read_text()


def test_fetchmail_over_imaps(server: TodokuServer, tmp_path: Path) -> None:
    fetchmail = require_tool("fetchmail")
    deliver(server, "for fetchmail")
    home = tmp_path / "home"
    out_dir = tmp_path / "delivered"
    home.mkdir()
    out_dir.mkdir()
    saver = tmp_path / "save.py"
    saver.write_text(
        "import sys, pathlib, uuid\n"
        f"pathlib.Path({str(out_dir)!r}, uuid.uuid4().hex).write_bytes(sys.stdin.buffer.read())\n"
    )
    cert = server.data_dir / "tls" / "cert.pem"
    rc = home / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 with proto IMAP port {server.ports['imaps']} timeout 30\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is "root" here\n'
        f'  ssl sslcertck sslcertfile "{cert}" sslcommonname "mx.example.test" keep\n'
        f'  mda "{sys.executable} {saver}"\n'
    )
    rc.chmod(0o600)
    env = os.environ | {"HOME": str(home), "FETCHMAILHOME": str(home)}
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [fetchmail, "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [saved] = list(out_dir.iterdir())
    assert b"Subject: for fetchmail" in saved.read_bytes()
    # "keep": the message stays, now \Seen.
    assert b"\\Seen" in flags_by_subject(server, "INBOX")["for fetchmail"]


def test_getmail_over_imaps(server: TodokuServer, tmp_path: Path) -> None:
    getmail = require_tool("getmail")
    deliver(server, "for getmail")
    home = tmp_path / "home"
    out_dir = tmp_path / "delivered"
    home.mkdir()
    out_dir.mkdir()
    saver = tmp_path / "save.py"
    saver.write_text(
        "import sys, pathlib, uuid\n"
        f"pathlib.Path({str(out_dir)!r}, uuid.uuid4().hex).write_bytes(sys.stdin.buffer.read())\n"
    )
    rc = home / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimpleIMAPSSLRetriever\nserver = 127.0.0.1\n"
        f"port = {server.ports['imaps']}\nusername = {ALICE}\npassword = {PASSWORD}\n"
        'mailboxes = ("INBOX",)\n\n'
        # getmail refuses to deliver to a maildir as root (CI runs as root): an MDA instead.
        f"[destination]\ntype = MDA_external\npath = {sys.executable}\n"
        f"arguments = ('{saver}',)\nallow_root_commands = true\n\n"
        "[options]\nread_all = true\ndelete = true\n"
    )
    run([getmail, "--getmaildir", str(home), "--rcfile", str(rc)], home)
    [saved] = list(out_dir.iterdir())
    assert b"Subject: for getmail" in saved.read_bytes()
    # delete = true: getmail flags it \Deleted and expunges; the message is gone from INBOX.
    assert flags_by_subject(server, "INBOX") == {}


def test_neomutt_reads_and_moves(server: TodokuServer, tmp_path: Path) -> None:
    neomutt = require_tool("neomutt")
    script = require_tool("script")  # neomutt needs a terminal: script(1) gives it one
    deliver(server, "read-in-mutt", body="a body to read")
    deliver(server, "move-in-mutt")
    home = tmp_path / "home"
    home.mkdir()
    cert = server.data_dir / "tls" / "cert.pem"
    rc = home / "muttrc"
    rc.write_text(
        f'set folder = "imaps://alice%40example.test@localhost:{server.ports["imaps"]}/"\n'
        f'set imap_pass = "{PASSWORD}"\nset spoolfile = "+INBOX"\n'
        f'set certificate_file = "{cert}"\nset ssl_force_tls = yes\n'
        'set header_cache = ""\nset message_cachedir = ""\nset confirmappend = no\n'
        "set move = no\nset mark_old = no\nset delete = yes\nset quit = yes\n"
        "set wait_key = no\nset imap_idle = no\n"
    )
    keys = (
        "<search>read-in-mutt<enter><display-message><exit>"
        "<search>move-in-mutt<enter><save-message>=Archive<enter>"
        "<sync-mailbox><quit>"
    )
    command = f"{neomutt} -n -F {rc} -e 'push \"{keys}\"'"
    env = os.environ | {"HOME": str(home), "TERM": "xterm"}
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [script, "-qec", command, "/dev/null"],
        env=env,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    inbox = flags_by_subject(server, "INBOX")
    assert set(inbox) == {"read-in-mutt"}, inbox
    assert b"\\Seen" in inbox["read-in-mutt"]
    assert set(flags_by_subject(server, "Archive")) == {"move-in-mutt"}
