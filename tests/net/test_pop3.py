"""POP3 end to end: a real ``todoku serve`` process, mail delivered through its SMTP port, read back
with Python's poplib, Debian's fetchmail and mpop; locking, drops, shutdown, undelete, restart."""

from __future__ import annotations

import base64
import os
import poplib
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context, require_tool
from tests.durability.census import stored_contents
from todoku.net.pop3_server import READ_AHEAD_BYTES, READ_AHEAD_MESSAGE_LIMIT, ReadAhead
from todoku.proto.pop3.content import encode_message
from todoku.proto.pop3.events import MaildropEntry
from todoku.store.api import IncomingMessage
from todoku.store.sqlite import SqliteStore

ALICE = "alice@example.test"
TRICKY_BODY = (
    b"Subject: tricky bytes\r\n"
    b"From: Bob <bob@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"\xe5\xb1\x8a\xe3\x81\x8f utf-8 text\r\n"
    b"trailing spaces   \r\n" + b"x" * 990 + b"\r\n"
    b"last line\r\n"
)


def deliver(server: TodokuServer, body: bytes, to: str = ALICE) -> None:
    """Send a message through todoku's own SMTP service, as any other mail server would."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        assert client.sendmail("bob@example.org", [to], body) == {}


def subject_mail(subject: str, extra: bytes = b"") -> bytes:
    return (
        f"Subject: {subject}\r\nFrom: bob@example.org\r\n\r\nbody of {subject}\r\n".encode() + extra
    )


def pop3_stls(server: TodokuServer) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    client.stls(client_tls_context())
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def pop3s(server: TodokuServer) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def retr_bytes(client: poplib.POP3, number: int) -> tuple[bytes, int]:
    """The message as the client sees it (lines unstuffed by poplib) and the size in the +OK line."""
    response, lines, _ = client.retr(number)
    size = int(response.split()[1])
    return b"".join(line + b"\r\n" for line in lines), size


def stored_blobs(server: TodokuServer) -> list[bytes]:
    return stored_contents(server.data_dir)


def uidls(client: poplib.POP3) -> list[str]:
    return [line.decode().split()[1] for line in client.uidl()[1]]


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


# ----------------------------------------------------------------- poplib


def test_poplib_stls_reads_smtp_delivered_mail_bytes_intact(server: TodokuServer) -> None:
    deliver(server, TRICKY_BODY)
    [stored] = stored_blobs(server)
    client = pop3_stls(server)
    try:
        count, octets = client.stat()
        assert (count, octets) == (1, len(stored))
        assert client.list()[1] == [f"1 {len(stored)}".encode()]
        content, size = retr_bytes(client, 1)
        # RFC 1939 §5: the size announced is the exact number of octets RETR delivers.
        assert size == len(stored) == len(content)
        assert content == stored
        assert content.endswith(TRICKY_BODY)
        top = client.top(1, 1)[1]
        assert top[-2:] == [b"", b".a line that starts with a dot"]
    finally:
        client.quit()


def test_pop3s_implicit_tls_with_auth_plain(server: TodokuServer) -> None:
    deliver(server, subject_mail("over pop3s"))
    client = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    try:
        assert "STLS" not in client.capa()
        assert client.capa()["SASL"] == ["PLAIN", "LOGIN"]
        token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        assert client._shortcmd(f"AUTH PLAIN {token}").startswith(
            b"+OK Logged in as alice@example.test"
        )
        content, _ = retr_bytes(client, 1)
        assert b"Subject: over pop3s\r\n" in content
    finally:
        client.quit()


def test_credentials_refused_in_clear_text(server: TodokuServer) -> None:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    try:
        assert "USER" not in client.capa() and "STLS" in client.capa()
        with pytest.raises(
            poplib.error_proto, match=r"-ERR \[AUTH\] Credentials are refused on an unencrypted"
        ):
            client.user(ALICE)
    finally:
        client.quit()


def test_plaintext_on_loopback_when_configured(make_server: Callable[..., TodokuServer]) -> None:
    srv = make_server(start=False, extra="")
    config = srv.config_path.read_text().replace(
        "[auth]\n", "[auth]\nallow_plaintext_on_loopback = true\n"
    )
    srv.config_path.write_text(config)
    srv.add_user(ALICE)
    srv.start()
    client = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
    try:
        client.user(ALICE)
        assert client.pass_(PASSWORD).startswith(b"+OK")
    finally:
        client.quit()


def test_wrong_password_and_shared_throttle(make_server: Callable[..., TodokuServer]) -> None:
    srv = make_server(start=False)
    config = srv.config_path.read_text().replace("[auth]\n", "[auth]\nlockout_after = 3\n")
    srv.config_path.write_text(config)
    srv.add_user(ALICE)
    srv.start()
    client = poplib.POP3_SSL(
        "127.0.0.1", srv.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    try:
        client.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
            client.pass_("wrong password")
        # One failure through SMTP AUTH counts against the same budget (one AuthThrottle).
        with (
            smtplib.SMTP_SSL(
                "127.0.0.1", srv.ports["submissions"], context=client_tls_context(), timeout=30
            ) as smtp,
            pytest.raises(smtplib.SMTPAuthenticationError),
        ):
            smtp.login(ALICE, "wrong again")
        client.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Too many failed logins"):
            client.pass_("third wrong")
    finally:
        client.close()
    # Locked out now, even with the right password.
    client = poplib.POP3_SSL(
        "127.0.0.1", srv.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    try:
        client.user(ALICE)
        with pytest.raises(poplib.error_proto, match="Too many failed logins"):
            client.pass_(PASSWORD)
    finally:
        client.close()


# ----------------------------------------------------------------- real clients


def test_fetchmail_fetches_over_pop3s_and_undelete_brings_it_back(
    server: TodokuServer, tmp_path: Path
) -> None:
    fetchmail = require_tool("fetchmail")
    deliver(server, TRICKY_BODY)
    [stored] = stored_blobs(server)
    home = tmp_path / "fetchmail-home"
    out_dir = tmp_path / "delivered"
    home.mkdir()
    out_dir.mkdir()
    saver = tmp_path / "save.py"
    saver.write_text(
        "import sys, pathlib, uuid\n"
        f"pathlib.Path({str(out_dir)!r}, uuid.uuid4().hex).write_bytes(sys.stdin.buffer.read())\n"
    )
    rc = home / "fetchmailrc"
    cert = server.data_dir / "tls" / "cert.pem"
    rc.write_text(
        f"poll 127.0.0.1 with proto POP3 port {server.ports['pop3s']} timeout 30\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is "root" here\n'
        # Real certificate checking against todoku's self-signed certificate (valid for 127.0.0.1).
        f'  ssl sslcertck sslcertfile "{cert}" sslcommonname "mx.example.test" fetchall\n'
        f'  mda "{sys.executable} {saver}"\n'
    )
    rc.chmod(0o600)
    env = os.environ | {"HOME": str(home), "FETCHMAILHOME": str(home)}
    result = subprocess.run(
        [fetchmail, "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [saved] = [p.read_bytes() for p in out_dir.iterdir()]
    # fetchmail hands the MDA LF line ends and adds its own Received header at the top;
    # everything todoku stored must be there, byte for byte.
    assert saved.endswith(stored.replace(b"\r\n", b"\n"))
    # fetchmail deleted it (no "keep"): gone from POP3, listed as recoverable, and undelete works.
    client = pop3s(server)
    assert client.stat() == (0, 0)
    client.quit()
    listing = server.cli("mailbox", "deleted", ALICE).stdout
    assert "tricky bytes" in listing and "<bob@example.org>" in listing
    assert "restored 1 message" in server.cli("mailbox", "undelete", ALICE, "--all").stdout
    client = pop3s(server)
    try:
        content, _ = retr_bytes(client, 1)
        assert content == stored
    finally:
        client.quit()


def test_mpop_fetches_over_stls_with_auth_plain(server: TodokuServer, tmp_path: Path) -> None:
    mpop = require_tool("mpop")
    deliver(server, TRICKY_BODY)
    deliver(server, subject_mail("second"))
    stored = stored_blobs(server)
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    args = [
        mpop,
        "--host=127.0.0.1",
        f"--port={server.ports['pop3']}",
        "--tls=on",
        "--tls-starttls=on",
        "--tls-certcheck=off",
        "--auth=plain",
        f"--user={ALICE}",
        f"--passwordeval=echo '{PASSWORD}'",
        f"--delivery=maildir,{maildir}",
        f"--uidls-file={tmp_path / 'uidls'}",
        "--keep=on",
    ]
    result = subprocess.run(
        args,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = sorted(p.read_bytes() for p in (maildir / "new").iterdir())
    assert len(fetched) == 2
    # mpop stores LF line ends in a Maildir and may add its own Received line.
    for blob in stored:
        assert any(f.endswith(blob.replace(b"\r\n", b"\n")) for f in fetched)
    # --keep=on and the UIDL file: a second run fetches nothing new.
    again = subprocess.run(
        args + ["--only-new=on"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"HOME": str(tmp_path)},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list((maildir / "new").iterdir())) == 2


# ----------------------------------------------------------------- concurrency and failures


def test_second_session_gets_in_use_until_the_first_ends(server: TodokuServer) -> None:
    deliver(server, subject_mail("one"))
    first = pop3_stls(server)
    second = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    second.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_(PASSWORD)
    first.dele(1)
    first.quit()
    second.user(ALICE)
    second.pass_(PASSWORD)
    assert second.stat() == (0, 0)
    # A session that vanishes without QUIT releases the lock too.
    _reset(second)
    assert wait_for(lambda: _can_log_in(server))


def _can_log_in(server: TodokuServer) -> bool:
    try:
        client = pop3s(server)
    except poplib.error_proto:
        return False
    client.quit()
    return True


def _reset(client: poplib.POP3) -> None:
    """Close with a TCP RST, as the kernel does when the client process is killed."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.file.close()  # the socket's file descriptor closes only when nothing refers to it
    client.sock.close()


def test_client_killed_mid_retr_deletes_nothing(server: TodokuServer) -> None:
    line = b"0123456789" * 9 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * (6 * 1024 * 1024 // len(line))
    deliver(server, big)
    deliver(server, subject_mail("small"))
    client = pop3_stls(server)
    before = uidls(client)
    client.dele(2)
    client._putcmd("RETR 1")
    assert client._getresp().startswith(b"+OK")
    client.file.read(100_000)  # part of the content, then the client dies
    _reset(client)
    assert wait_for(lambda: _can_log_in(server))
    client = pop3s(server)
    try:
        assert uidls(client) == before
        content, size = retr_bytes(client, 1)
        assert size == len(content) and content.endswith(big)
    finally:
        client.quit()
    assert "0 deleted messages" in server.cli("mailbox", "deleted", ALICE).stdout


def test_client_killed_mid_update_leaves_all_or_nothing(server: TodokuServer) -> None:
    for n in range(3):
        deliver(server, subject_mail(f"m{n}"))
    client = pop3_stls(server)
    before = uidls(client)
    client.sock.sendall(b"DELE 1\r\nDELE 3\r\nQUIT\r\n")  # pipelined, then the client dies
    _reset(client)
    assert wait_for(lambda: _can_log_in(server))
    client = pop3s(server)
    try:
        after = uidls(client)
    finally:
        client.quit()
    assert after in (before, [before[1]])  # the UPDATE ran completely or not at all
    deleted = server.cli("mailbox", "deleted", ALICE).stdout
    assert ("0 deleted messages" in deleted) == (after == before)


def test_server_killed_mid_update_leaves_all_or_nothing(server: TodokuServer) -> None:
    for n in range(3):
        deliver(server, subject_mail(f"m{n}"))
    client = pop3_stls(server)
    before = uidls(client)
    client.sock.sendall(b"DELE 1\r\nDELE 2\r\nQUIT\r\n")
    server.kill()
    client.close()
    server.start()
    client = pop3s(server)
    try:
        after = uidls(client)
    finally:
        client.quit()
    assert after in (before, [before[2]])


def test_shutdown_applies_no_deletions_without_quit(server: TodokuServer) -> None:
    deliver(server, subject_mail("keep me"))
    client = pop3_stls(server)
    before = uidls(client)
    client.dele(1)
    assert server.stop() == 0
    assert client.file.readline().startswith(b"-ERR [SYS/TEMP] Server shutting down")
    client.close()
    server.start()
    client = pop3s(server)
    try:
        assert uidls(client) == before
    finally:
        client.quit()


def test_dele_quit_undelete_gives_new_uidl_and_restart_keeps_uidls(server: TodokuServer) -> None:
    for n in range(3):
        deliver(server, subject_mail(f"m{n}"))
    client = pop3_stls(server)
    first = uidls(client)
    assert len(set(first)) == 3
    client.dele(2)
    client.quit()
    client = pop3s(server)
    assert uidls(client) == [first[0], first[2]]  # other messages keep their UIDL
    client.quit()
    listing = server.cli("mailbox", "deleted", ALICE).stdout.splitlines()
    [row] = [line for line in listing if "m1" in line]
    assert " INBOX " in row  # the folder it comes back into
    message_id = row.split()[0]
    assert "restored 1 message" in server.cli("mailbox", "undelete", ALICE, message_id).stdout
    client = pop3s(server)
    restored = uidls(client)
    client.quit()
    assert restored[:2] == [first[0], first[2]]
    assert restored[2] not in first  # a new UIDL: clients that deleted it fetch it again
    server.stop()
    server.start()
    client = pop3s(server)
    try:
        assert uidls(client) == restored
        content, _ = retr_bytes(client, 3)
        assert b"Subject: m1\r\n" in content
    finally:
        client.quit()


def test_undelete_since_and_bad_input(server: TodokuServer) -> None:
    deliver(server, subject_mail("old"))
    client = pop3s(server)
    client.dele(1)
    client.quit()
    assert server.cli("mailbox", "undelete", ALICE, check=False).returncode == 2
    bad = server.cli("mailbox", "undelete", ALICE, "--since", "yesterday-ish", check=False)
    assert bad.returncode == 2 and "not a date" in bad.stderr
    missing = server.cli("mailbox", "undelete", ALICE, "424242", check=False)
    assert missing.returncode == 2 and "no deleted message with id 424242" in missing.stderr
    future = time.strftime("%Y-%m-%d", time.localtime(time.time() + 2 * 86400))
    assert (
        "restored 0 messages" in server.cli("mailbox", "undelete", ALICE, "--since", future).stdout
    )
    assert "restored 1 message" in server.cli("mailbox", "undelete", ALICE, "--since", "1h").stdout


def test_retention_zero_purges_at_quit(make_server: Callable[..., TodokuServer]) -> None:
    srv = make_server(start=False, extra='\n[retention]\ndeleted = "0"\n')
    srv.add_user(ALICE)
    srv.start()
    deliver(srv, subject_mail("gone"))
    assert len(stored_blobs(srv)) == 1
    client = pop3s(srv)
    client.dele(1)
    client.quit()
    assert "0 deleted messages" in srv.cli("mailbox", "deleted", ALICE).stdout
    assert stored_blobs(srv) == []


def test_purge_task_removes_mail_past_retention(make_server: Callable[..., TodokuServer]) -> None:
    srv = make_server(start=False, extra='\n[retention]\ndeleted = "3s"\n')
    srv.add_user(ALICE)
    srv.start()
    deliver(srv, subject_mail("short-lived"))
    client = pop3s(srv)
    client.dele(1)
    client.quit()
    assert len(stored_blobs(srv)) == 1  # kept for now (checked at once: the CLI is too slow here)
    # The deletion time is in the database: a server started later purges it all the same.
    srv.stop()
    srv.start()
    assert wait_for(lambda: stored_blobs(srv) == [], timeout=20)
    assert "0 deleted messages" in srv.cli("mailbox", "deleted", ALICE).stdout


def test_large_retr_streams_without_holding_the_message(server: TodokuServer) -> None:
    line = b"abcdefghij" * 9 + b"\r\n"
    big = b"Subject: large\r\n\r\n" + line * (16 * 1024 * 1024 // len(line))
    deliver(server, big)
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status")

    def peak_kib() -> int:
        return next(
            int(x.split()[1]) for x in status.read_text().splitlines() if x.startswith("VmHWM:")
        )

    client = pop3s(server)
    try:
        before = peak_kib()
        content, size = retr_bytes(client, 1)
        grown = peak_kib() - before
    finally:
        client.quit()
    assert size == len(content) and content.endswith(big)
    assert grown < 8 * 1024, f"server peak memory grew by {grown} KiB during a 16 MiB RETR"


def test_raw_pipelining_and_errors_over_the_wire(server: TodokuServer) -> None:
    deliver(server, subject_mail("piped"))
    with socket.create_connection(("127.0.0.1", server.ports["pop3s"]), timeout=30) as raw:
        tls = client_tls_context().wrap_socket(raw)
        reader = tls.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        tls.sendall(
            f"STAT\r\nUSER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nFROB\r\n".encode()
            + b"X" * 300
            + b"\r\nQUIT\r\n"
        )
        lines = [reader.readline() for _ in range(7)]
    assert lines[0].startswith(b"-ERR STAT is only valid after login")
    assert lines[1].startswith(b"+OK") and lines[2].startswith(b"+OK Logged in")
    assert lines[3].startswith(b"+OK 1 ")
    assert lines[4] == b"-ERR Unknown command: FROB\r\n"
    assert lines[5].startswith(b"-ERR Command line too long")
    assert lines[6].startswith(b"+OK mx.example.test POP3 server signing off")
    assert isinstance(tls, ssl.SSLSocket)


def test_retr_in_any_order_and_pipelined_sends_the_stored_files(server: TodokuServer) -> None:
    """Read-ahead (small messages read many at a time) never changes what RETR sends."""
    bodies = [subject_mail(f"m{n}", b".dot line\r\n" * (n % 3)) for n in range(30)]
    bodies[7] = subject_mail("big", (b"y" * 98 + b"\r\n") * 1500)  # 150 KiB: streamed instead
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        for body in bodies:
            assert smtp.sendmail("bob@example.org", [ALICE], body) == {}
    stored = set(stored_blobs(server))
    client = pop3s(server)
    try:
        client.dele(3)
        with pytest.raises(poplib.error_proto, match="marked as deleted"):
            client.retr(3)
        for number in [*range(1, 3), *range(4, 31), 20, 2, 30, 8, 1]:
            content, size = retr_bytes(client, number)
            assert content in stored and size == len(content)
            assert content.endswith(bodies[number - 1])
        pipelined = [9, 10, 11, 8, 12, 29, 30, 1]
        client.sock.sendall(b"".join(f"RETR {n}\r\n".encode() for n in pipelined))
        for number in pipelined:
            response, lines, _ = client._getlongresp()
            content = b"".join(line + b"\r\n" for line in lines)
            assert content in stored and int(response.split()[1]) == len(content)
            assert content.endswith(bodies[number - 1])
    finally:
        client.quit()


# ----------------------------------------------------------------- read-ahead, without sockets


class MessageFiles:
    """Message files on a real disk, recording which ones were opened."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[str] = []

    def add(self, blob_id: str, content: bytes) -> None:
        (self.root / blob_id).write_bytes(content)

    def open(self, blob_id: str) -> BinaryIO:
        self.opened.append(blob_id)
        return open(self.root / blob_id, "rb")  # read_batch closes it


def read(path: Path) -> bytes:
    return path.read_bytes()


def maildrop_of(files: MessageFiles, sizes: list[int]) -> tuple[list[MaildropEntry], ReadAhead]:
    entries, blob_ids = [], {}
    for number, size in enumerate(sizes, 1):
        content = (f"Subject: {number}\r\n\r\n".encode() + b"z" * size)[:size]
        files.add(f"blob{number}", content)
        entries.append(MaildropEntry(1000 + number, size, f"u{number}"))
        blob_ids[1000 + number] = f"blob{number}"
    return entries, ReadAhead(files.open, blob_ids)


async def test_read_ahead_reads_many_messages_per_worker_hop(tmp_path: Path) -> None:
    files = MessageFiles(tmp_path)
    maildrop, read_ahead = maildrop_of(files, [3000] * 200)
    for number in range(1, 201):
        message = await read_ahead.message(number, maildrop, set())
        assert message == encode_message((tmp_path / f"blob{number}").read_bytes())
        read_ahead.read_on(maildrop, set())  # as the session does once the answer is out
    # One hop per message would be 200; the budget allows about 600 KB / READ_AHEAD_BYTES.
    assert 2 <= read_ahead.batches <= 200 * 3000 // READ_AHEAD_BYTES + 2
    assert sorted(files.opened) == sorted(f"blob{n}" for n in range(1, 201))  # each read once


async def test_read_ahead_skips_deleted_and_large_messages(tmp_path: Path) -> None:
    files = MessageFiles(tmp_path)
    sizes = [500, 500, READ_AHEAD_MESSAGE_LIMIT + 1, 500, 500]
    maildrop, read_ahead = maildrop_of(files, sizes)
    assert await read_ahead.message(1, maildrop, {2}) == encode_message(read(tmp_path / "blob1"))
    assert await read_ahead.message(3, maildrop, {2}) is None  # the streaming path sends it
    assert await read_ahead.message(5, maildrop, {2}) == encode_message(read(tmp_path / "blob5"))
    assert "blob2" not in files.opened and "blob3" not in files.opened


async def test_read_ahead_follows_a_client_that_jumps_and_leaves_errors_to_streaming(
    tmp_path: Path,
) -> None:
    files = MessageFiles(tmp_path)
    maildrop, read_ahead = maildrop_of(files, [800] * 10)
    (tmp_path / "blob6").unlink()  # gone from disk: RETR must answer -ERR, not empty content
    for number in (9, 2, 10, 1, 5):
        message = await read_ahead.message(number, maildrop, set())
        assert message == encode_message(read(tmp_path / f"blob{number}"))
    assert await read_ahead.message(6, maildrop, set()) is None


async def test_maildrop_listing_is_the_live_messages_with_their_uidl(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    try:
        for n in range(3):
            writer = store.new_blob()
            writer.write(subject_mail(f"m{n}"))
            await store.commit(IncomingMessage(writer.finish(), "bob@example.org", (ALICE,)))
        first = store.list_messages(ALICE)[0]
        store.mark_deleted(ALICE, [first.id], time.time())
        rows = store.list_maildrop(ALICE.upper())
        live = store.list_messages(ALICE)
        assert len(rows) == 2
        assert rows == [(m.id, m.size, m.unique_id, m.blob_id) for m in live]
    finally:
        store.close()


def test_idle_client_is_logged_out_by_the_one_session_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link's single idle timer ends a silent session with the autologout -ERR, while a client
    that keeps sending commands past the time-out is not cut off (the timer is re-armed)."""
    import asyncio

    from todoku.config.load import config_from_dict
    from todoku.net import pop3_server
    from todoku.policy.auth import AuthThrottle
    from todoku.proto.pop3 import replies

    monkeypatch.setattr(pop3_server, "COMMAND_TIMEOUT", 0.6)
    config = config_from_dict(
        {"data_dir": str(tmp_path), "hostname": "pop.example.test", "domains": ["example.test"]},
        tmp_path,
    )
    ctx = pop3_server.Pop3Context(
        config=config,
        store=None,  # type: ignore[arg-type]
        directory=None,  # type: ignore[arg-type]
        blobs=None,  # type: ignore[arg-type]
        throttle=AuthThrottle(),
        tls_context=None,
    )
    settings = pop3_server.settings_for("pop3", config, loopback=True, tls_ready=False)

    async def scenario() -> tuple[list[bytes], bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: pop3_server.Pop3Link(ctx, "pop3", settings), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            busy = [await reader.readline()]
            for _ in range(5):  # 1.5 s of commands, longer than the 0.6 s time-out
                await asyncio.sleep(0.3)
                writer.write(b"CAPA\r\n")
                busy.append(await asyncio.wait_for(reader.readline(), 10))
                while (await asyncio.wait_for(reader.readline(), 10)) != b".\r\n":
                    pass
            rest = await asyncio.wait_for(reader.read(), 10)  # silence: the timer ends it
            writer.close()
            return busy, rest
        finally:
            server.close()

    busy, rest = asyncio.run(scenario())
    assert busy[0].startswith(b"+OK pop.example.test")
    assert busy[1:] == [b"+OK Capability list follows\r\n"] * 5
    assert rest == replies.TIMEOUT.to_bytes()
