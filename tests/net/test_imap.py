"""IMAP end to end: a real ``todoku serve`` process, mail delivered through its SMTP port, read,
flagged, moved and expunged with Python's imaplib, and seen from a second session."""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from itertools import count

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context, write_config

ALICE = "alice@example.test"
USERS = 20  # one per test: tests share the module's server, not its mailboxes
_next_user = count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TodokuServer]:
    """One real server for the module, with ``USERS`` users made before it starts."""
    root = tmp_path_factory.mktemp("imap")
    server = TodokuServer(root=root, config_path=write_config(root), data_dir=root / "data")
    for n in range(USERS):
        server.add_user(f"user{n}@example.test")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def user() -> str:
    """An address of its own for each test (its mailbox starts empty)."""
    n = next(_next_user)
    assert n < USERS, "add users to USERS"
    return f"user{n}@example.test"


def deliver(server: TodokuServer, subject: str, body: str = "hello", to: str = ALICE) -> None:
    message = (
        f"From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        assert client.sendmail("bob@example.org", [to], message.encode()) == {}


def imaps(server: TodokuServer, user: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=client_tls_context(), timeout=30
    )
    client.login(user, PASSWORD)
    return client


def test_starttls_is_required_before_login_on_143(server: TodokuServer, user: str) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED|LOGINDISABLED"):
        client.login(user, PASSWORD)
    client.starttls(client_tls_context())
    assert client.login(user, PASSWORD)[0] == "OK"
    caps = client.capability()[1][0].split()
    assert b"UIDPLUS" in caps and b"LOGINDISABLED" not in caps
    client.logout()


def test_wrong_password_is_refused_and_counted(server: TodokuServer, user: str) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=client_tls_context(), timeout=30
    )
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(user, "wrong")
    client.logout()


def test_delivered_mail_is_read_flagged_searched_and_moved(server: TodokuServer, user: str) -> None:
    deliver(server, "first", to=user)
    deliver(server, "second", body="the word is pomegranate", to=user)
    client = imaps(server, user)
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    typ, data = client.fetch("1:2", "(UID FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    parts = [d for d in data if isinstance(d, tuple)]  # (response, literal) per message
    assert typ == "OK" and len(parts) == 2
    assert b"Subject: first" in parts[0][1] and b"Subject: second" in parts[1][1]
    assert b'"first"' in parts[0][0] and b'("Bob" NIL "bob" "example.org")' in parts[0][0]
    assert client.search(None, "UNSEEN") == ("OK", [b"1 2"])
    assert client.search(None, "BODY", "pomegranate") == ("OK", [b"2"])
    typ, data = client.fetch("2", "(BODY[TEXT])")  # not PEEK: sets \Seen
    assert data[0][1] == b"the word is pomegranate\r\n"
    assert client.search(None, "SEEN") == ("OK", [b"2"])
    typ, data = client.store("1", "+FLAGS", "(\\Flagged $Work)")
    assert b"\\Flagged" in data[0] and b"$Work" in data[0]
    typ, data = client.uid("MOVE", "1", "Archive")
    assert typ == "OK"
    assert client.select("Archive") == ("OK", [b"1"])
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"$Work" in data[0]
    client.logout()


def test_append_returns_appenduid_and_copy_copyuid(server: TodokuServer, user: str) -> None:
    client = imaps(server, user)
    message = b"From: alice@example.test\r\nSubject: draft\r\n\r\nwork in progress\r\n"
    typ, data = client.append("Drafts", "(\\Draft)", None, message)
    assert typ == "OK" and re.search(rb"APPENDUID \d+ 1", data[0])
    client.select("Drafts")
    typ, data = client.copy("1", "INBOX")
    assert typ == "OK" and re.search(rb"COPYUID \d+ 1 1", data[0])
    typ, data = client.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")
    assert b"MESSAGES 1" in data[0] and b"UIDNEXT 2" in data[0]
    client.logout()


def test_list_shows_special_use_folders_and_children(server: TodokuServer, user: str) -> None:
    client = imaps(server, user)
    assert client.create("Projects/2026")[0] == "OK"
    typ, data = client.list()
    assert typ == "OK"
    lines = b"\n".join(d for d in data if isinstance(d, bytes))
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in lines
    assert b'(\\HasChildren) "/" Projects' in lines
    assert b'(\\HasNoChildren) "/" Projects/2026' in lines
    assert client.rename("Projects/2026", "Projects/Y2026")[0] == "OK"
    assert client.delete("Projects/Y2026")[0] == "OK"
    assert client.delete("INBOX")[0] == "NO"
    client.logout()


def test_two_sessions_see_each_others_flags_and_expunges(server: TodokuServer, user: str) -> None:
    for n in range(3):
        deliver(server, f"m{n}", to=user)
    one, two = imaps(server, user), imaps(server, user)
    one.select("INBOX")
    two.select("INBOX")
    one.store("2", "+FLAGS", "(\\Deleted)")
    one.expunge()
    assert two.noop()[0] == "OK"
    responses = two.untagged_responses
    assert responses.get("EXPUNGE") == [b"2"], responses
    one.store("1", "+FLAGS", "(\\Seen)")
    two.noop()
    assert any(b"\\Seen" in line for line in two.untagged_responses.get("FETCH", []))
    one.logout()
    two.logout()


def test_idle_hears_a_delivery_within_a_second(server: TodokuServer, user: str) -> None:
    client = imaps(server, user)
    client.select("INBOX")
    sock = client.socket()
    tag = client._new_tag().decode()  # imaplib has no IDLE before 3.14
    client.send(f"{tag} IDLE\r\n".encode())
    assert client.readline().startswith(b"+ ")
    sent = time.monotonic()
    threading.Thread(target=deliver, args=(server, "while idle", "hello", user)).start()
    sock.settimeout(10)
    line = client.readline()
    elapsed = time.monotonic() - sent
    assert line == b"* 1 EXISTS\r\n"
    assert elapsed < 1.0 + 0.5, elapsed  # the delivery itself takes part of the second
    client.send(b"DONE\r\n")
    assert client.readline() == f"{tag} OK IDLE terminated\r\n".encode()
    client.logout()


def raw(server: TodokuServer) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    wrapped = client_tls_context().wrap_socket(sock)
    assert wrapped.recv(4096).startswith(b"* OK [CAPABILITY")
    return wrapped


def exchange(sock: ssl.SSLSocket, data: bytes, tag: bytes) -> bytes:
    sock.sendall(data)
    out = b""
    while not re.search(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n$", out):
        piece = sock.recv(65536)
        assert piece, out
        out += piece
    return out


def test_sasl_ir_literal_plus_and_compress_deflate(server: TodokuServer, user: str) -> None:
    deliver(server, "compressed", to=user)
    sock = raw(server)
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    assert b"a OK" in exchange(sock, b"a AUTHENTICATE PLAIN " + token + b"\r\n", b"a")
    assert b"z OK" in exchange(sock, b"z COMPRESS DEFLATE\r\n", b"z")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)

    def send(data: bytes, tag: bytes) -> bytes:
        sock.sendall(deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))
        out = b""
        while not re.search(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n$", out):
            out += inflate.decompress(sock.recv(65536))
        return out

    assert b"* 1 EXISTS" in send(b"s SELECT {5+}\r\nINBOX\r\n", b"s")
    assert b"Subject: compressed" in send(b"f FETCH 1 BODY.PEEK[HEADER]\r\n", b"f")
    sock.close()


def test_a_literal_beyond_appendlimit_is_refused_before_it_is_sent(
    server: TodokuServer, user: str
) -> None:
    sock = raw(server)
    exchange(sock, f"a LOGIN {user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    out = exchange(sock, b"b APPEND INBOX {1073741824}\r\n", b"b")
    assert out.startswith(b"b NO [TOOBIG]")
    assert b"c OK" in exchange(sock, b"c NOOP\r\n", b"c")
    sock.close()


def test_condstore_and_qresync(server: TodokuServer, user: str) -> None:
    deliver(server, "q1", to=user)
    deliver(server, "q2", to=user)
    sock = raw(server)
    exchange(sock, f"a LOGIN {user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    exchange(sock, b"e ENABLE QRESYNC\r\n", b"e")
    out = exchange(sock, b"s SELECT INBOX (CONDSTORE)\r\n", b"s")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))  # type: ignore[union-attr]
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", out).group(1))  # type: ignore[union-attr]
    out = exchange(sock, b"t UID STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)\r\n", b"t")
    assert b"[MODIFIED 1]" in out
    out = exchange(sock, b"u UID STORE 2 +FLAGS.SILENT (\\Deleted)\r\n", b"u")
    exchange(sock, b"x EXPUNGE\r\n", b"x")
    exchange(sock, b"c CLOSE\r\n", b"c")
    out = exchange(sock, f"q SELECT INBOX (QRESYNC ({validity} {highest} 1:2))\r\n".encode(), b"q")
    assert b"* VANISHED (EARLIER) 2" in out
    sock.close()


def test_idle_hears_another_sessions_flag_change(server: TodokuServer, user: str) -> None:
    deliver(server, "flag me", to=user)
    idler, other = imaps(server, user), imaps(server, user)
    idler.select("INBOX")
    other.select("INBOX")
    tag = idler._new_tag().decode()
    idler.send(f"{tag} IDLE\r\n".encode())
    assert idler.readline().startswith(b"+ ")
    other.store("1", "+FLAGS", "(\\Flagged)")
    idler.socket().settimeout(5)
    assert idler.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"
    idler.send(b"DONE\r\n")
    assert idler.readline() == f"{tag} OK IDLE terminated\r\n".encode()
    idler.logout()
    other.logout()


def test_pop3_and_imap_share_the_inbox(server: TodokuServer, user: str) -> None:
    import poplib

    deliver(server, "for both", to=user)
    client = imaps(server, user)
    assert client.select("INBOX") == ("OK", [b"1"])
    pop = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_tls_context(), timeout=30
    )
    pop.user(user)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    pop.dele(1)
    pop.quit()
    client.noop()
    assert client.untagged_responses.get("EXPUNGE") == [b"1"]
    client.logout()


def test_imap4rev2_searches_answer_esearch(server: TodokuServer, user: str) -> None:
    deliver(server, "rev2", to=user)
    sock = raw(server)
    exchange(sock, f"a LOGIN {user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    assert b"* SEARCH 1\r\n" in exchange(sock, b"p SELECT INBOX\r\nq SEARCH ALL\r\n", b"q")
    assert b"* ENABLED IMAP4rev2" in exchange(sock, b"e ENABLE IMAP4rev2\r\n", b"e")
    out = exchange(sock, b"s SEARCH UNSEEN\r\n", b"s")
    assert b'* ESEARCH (TAG "s") ALL 1\r\n' in out
    out = exchange(sock, b"u UID SEARCH RETURN (COUNT) ALL\r\n", b"u")
    assert b'* ESEARCH (TAG "u") UID COUNT 1\r\n' in out
    sock.close()


def test_namespace_id_quota_and_list_status(server: TodokuServer, user: str) -> None:
    deliver(server, "counted", to=user)
    sock = raw(server)
    exchange(sock, f"a LOGIN {user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    assert b'* NAMESPACE (("" "/")) NIL NIL' in exchange(sock, b"n NAMESPACE\r\n", b"n")
    assert b'* ID ("name" "todoku"' in exchange(sock, b'i ID ("name" "test")\r\n', b"i")
    out = exchange(sock, b"q GETQUOTAROOT INBOX\r\n", b"q")
    assert b'* QUOTAROOT INBOX ""' in out and b"MESSAGE 1 " in out
    out = exchange(sock, b'l LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))\r\n', b"l")
    assert b"* STATUS INBOX (MESSAGES 1 UNSEEN 1)" in out
    out = exchange(sock, b'l2 LIST (SPECIAL-USE) "" "*"\r\n', b"l2")
    assert b"INBOX" not in out and b"\\Trash" in out
    sock.close()


def subjects(server: TodokuServer, user: str, folder: str) -> list[str]:
    client = imaps(server, user)
    client.select(folder, readonly=True)
    typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    assert typ == "OK"
    return sorted(
        d[1].decode().strip().removeprefix("Subject: ") for d in data if isinstance(d, tuple)
    )


def test_sigkill_during_append_and_move_loses_and_duplicates_nothing(
    make_server: Callable[..., TodokuServer],
) -> None:
    srv = make_server(start=False)
    srv.add_user(ALICE)
    srv.start()
    for n in range(3):
        deliver(srv, f"m{n}")
    sock = raw(srv)
    exchange(sock, f"a LOGIN {ALICE} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    sock.sendall(b"b APPEND INBOX {100000}\r\n")
    assert sock.recv(100).startswith(b"+ ")
    sock.sendall(b"Subject: half\r\n\r\n" + b"x" * 50_000)
    srv.kill()  # in the middle of the literal
    sock.close()
    srv.start()
    assert subjects(srv, ALICE, "INBOX") == ["m0", "m1", "m2"]
    sock = raw(srv)
    exchange(sock, f"a LOGIN {ALICE} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    exchange(sock, b"s SELECT INBOX\r\n", b"s")
    sock.sendall(b"m UID MOVE 1:3 Archive\r\n")
    srv.kill()  # as the MOVE is being done: either all moved or none, never both or neither
    sock.close()
    srv.start()
    inbox, archive = subjects(srv, ALICE, "INBOX"), subjects(srv, ALICE, "Archive")
    assert sorted(inbox + archive) == ["m0", "m1", "m2"], (inbox, archive)
    assert srv.cli("fsck", check=False).returncode == 0


def login_raw(server: TodokuServer, user: str) -> ssl.SSLSocket:
    sock = raw(server)
    exchange(sock, f"a LOGIN {user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode(), b"a")
    return sock


def test_binary_create_special_use_unselect_and_utf8_names(server: TodokuServer, user: str) -> None:
    message = (
        b"From: a@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--b--\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.sendmail("a@example.org", [user], message)
    sock = login_raw(server, user)
    exchange(sock, b"s SELECT INBOX\r\n", b"s")
    out = exchange(sock, b"b FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])\r\n", b"b")
    assert b"BINARY[2] ~{4}\r\n\x00\x01\x02\xff" in out and b"BINARY.SIZE[2] 4" in out
    assert b"u OK" in exchange(sock, b"u UNSELECT\r\n", b"u")
    assert b"f BAD" in exchange(sock, b"f FETCH 1 FLAGS\r\n", b"f")  # nothing selected now
    assert b"c OK" in exchange(sock, b"c CREATE Receipts (USE (\\Archive))\r\n", b"c")
    out = exchange(sock, b'l LIST "" Receipts RETURN (SPECIAL-USE)\r\n', b"l")
    assert b"\\Archive" in out
    # A name outside ASCII: modified UTF-7 for a rev1 client, UTF-8 after ENABLE UTF8=ACCEPT.
    assert b"m OK" in exchange(sock, b"m CREATE &ZeVnLIqe-\r\n", b"m")
    assert b'"/" &ZeVnLIqe-\r\n' in exchange(sock, b'l2 LIST "" "&ZeVnLIqe-"\r\n', b"l2")
    exchange(sock, b"e ENABLE UTF8=ACCEPT\r\n", b"e")
    out = exchange(sock, 'l3 LIST "" "日本語"\r\n'.encode(), b"l3")
    assert '"/" "日本語"\r\n'.encode() in out  # quoted: atoms are ASCII
    out = exchange(sock, b"t STATUS INBOX (APPENDLIMIT SIZE)\r\n", b"t")
    assert re.search(rb"\* STATUS INBOX \(APPENDLIMIT \d+ SIZE \d+\)", out)
    sock.close()
