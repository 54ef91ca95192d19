"""End-to-end SMTP tests: the real server process, driven by clients no one here wrote."""

from __future__ import annotations

import base64
import smtplib
import socket
import subprocess
import time
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context, require_tool


def mailbox_contents(server: TodokuServer, address: str) -> list[bytes]:
    """What is stored for ``address``, read through the store (the same path POP3 uses)."""
    from todoku.store.sqlite import SqliteStore

    store = SqliteStore(server.data_dir)
    try:
        out = []
        for message in store.list_messages(address):
            with store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out
    finally:
        store.close()


def submission_client(server: TodokuServer, user: str = "alice@example.test") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15)
    client.starttls(context=client_tls_context())
    client.login(user, PASSWORD)
    return client


# ---------------------------------------------------------------- receiving for local domains (MX)


def test_mx_delivers_to_local_user_with_received_header(server: TodokuServer) -> None:
    body = b"From: someone@remote.test\r\nSubject: hello\r\n\r\nline one\r\n.leading dot\r\n"
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        assert client.has_extn("pipelining") and client.has_extn("starttls")
        assert not client.has_extn("auth"), "AUTH must not be offered on the MX port"
        client.sendmail("someone@remote.test", ["Alice@Example.Test"], body)
    [stored] = mailbox_contents(server, "alice@example.test")
    assert stored.endswith(body)
    received = message_from_bytes(stored)["Received"]
    assert "from client.remote.test ([127.0.0.1])" in received
    assert "by mx.example.test" in received and "with ESMTP id" in received
    assert "for <Alice@example.test>" in received


def test_unknown_local_user_gets_postfix_wording(server: TodokuServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        code, text = client.rcpt("bob@example.test")
    assert code == 550
    assert text == (
        b"5.1.1 <bob@example.test>: Recipient address rejected: User unknown in local recipient table"
    )


RELAY_TRICKS = [
    "victim@elsewhere.test",
    "victim%elsewhere.test@[127.0.0.1]",
    "@example.test:victim@elsewhere.test",
    "@example.test,@example.org:victim@elsewhere.test",
    "victim@ELSEWHERE.TEST",
    "victim@elsewhere.test.",
    "victim@[192.0.2.1]",
    "victim@[IPv6:2001:db8::1]",
    '"victim@elsewhere.test"@elsewhere.test',
    "elsewhere.test!victim@elsewhere.test",
    "victim@example.test@elsewhere.test",
]


@pytest.mark.parametrize("recipient", RELAY_TRICKS)
def test_never_an_open_relay(server: TodokuServer, recipient: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        # Raw command: smtplib would rewrite source routes and quoted local parts.
        code, text = client.docmd("RCPT", f"TO:<{recipient}>")
        assert code in (501, 554), (recipient, code, text)
        if code == 554:
            assert text.startswith(b"5.7.1 <") and text.endswith(b">: Relay access denied")
        assert client.docmd("DATA")[0] == 554  # no valid recipients: nothing can be queued
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.ehlo("client.remote.test")
        assert client.mail("someone@remote.test")[0] == 530  # no AUTH, no mail at all on 587
    assert server.cli("queue", "list").stdout.startswith("-- 0 messages")


def test_percent_hack_and_quoted_at_stay_local(server: TodokuServer) -> None:
    """These name (unknown) local users of ours; they must never be routed elsewhere."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        for recipient in (
            "victim%elsewhere.test@example.test",
            '"victim@elsewhere.test"@example.test',
            "elsewhere.test!victim@example.test",
        ):
            code, text = client.rcpt(recipient)
            assert code == 550 and b"5.1.1" in text, (recipient, code, text)


def test_postmaster_always_works(server: TodokuServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        assert client.rcpt("postmaster@example.test")[0] == 250
        assert client.rcpt("POSTMASTER@example.org")[0] == 250
        assert client.rcpt("<Postmaster>")[0] == 250  # RFC 5321 §4.1.1.3
        client.data(b"Subject: to postmaster\r\n\r\nhi\r\n")
    assert len(mailbox_contents(server, "postmaster@example.test")) == 1


def test_message_size_limit(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(extra='[limits]\nmax_message_size = "10KiB"\n', start=False)
    server.add_user("alice@example.test")
    server.start()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        assert client.esmtp_features["size"] == str(10 * 1024)
        code, text = client.mail("someone@remote.test", ["SIZE=20000"])
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed limit")
        client.rset()
        # smtplib only sends SIZE when asked: an undeclared oversized message is refused at the end.
        client.mail("someone@remote.test")
        client.rcpt("alice@example.test")
        code, text = client.data(b"Subject: big\r\n\r\n" + b"x" * 30000 + b"\r\n")
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed limit")
        assert client.noop()[0] == 250  # the session goes on
    assert mailbox_contents(server, "alice@example.test") == []


def test_long_lines_in_data_are_carried_whole(server: TodokuServer) -> None:
    long_line = b"y" * 200_000
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.sendmail(
            "someone@remote.test",
            ["alice@example.test"],
            b"Subject: long\r\n\r\n" + long_line + b"\r\n",
        )
    [stored] = mailbox_contents(server, "alice@example.test")
    assert stored.endswith(long_line + b"\r\n")


def test_command_line_too_long_and_session_goes_on(server: TodokuServer) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\nQUIT\r\n")
        assert reader.readline() == b"500 5.5.2 Error: line too long\r\n"
        assert reader.readline().startswith(b"250 2.0.0")
        assert reader.readline().startswith(b"221 2.0.0")


def test_pipelined_transaction_in_one_write(server: TodokuServer) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO pipe.remote.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<nobody@example.test>\r\n"
            b"RCPT TO:<alice@example.test>\r\nDATA\r\n"
        )
        replies = [reader.readline() for _ in range(4)]
        assert [r[:3] for r in replies] == [b"250", b"550", b"250", b"354"]
        sock.sendall(b"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert reader.readline().startswith(b"250 2.0.0 Ok: queued as ")
        assert reader.readline().startswith(b"221 ")
    assert len(mailbox_contents(server, "alice@example.test")) == 1


def test_smuggled_message_is_not_split(server: TodokuServer) -> None:
    """CVE-2023-51764: <LF>.<CR><LF> must not end DATA; the 'second' message stays content."""
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(
            b"HELO smuggler\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        )
        for _ in range(4):
            reader.readline()
        sock.sendall(
            b"Subject: one\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@remote.test>\r\n"
            b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\nQUIT\r\n"
        )
        assert reader.readline().startswith(b"250 2.0.0 Ok: queued as")
        assert reader.readline().startswith(b"221 ")
    [stored] = mailbox_contents(server, "alice@example.test")
    assert b"Subject: smuggled" in stored  # carried inside the one message, not a second one


# ---------------------------------------------------------------- submission (587, 465)


def test_auth_before_starttls_is_refused(server: TodokuServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.ehlo("laptop")
        assert not client.has_extn("auth")
        code, text = client.docmd(
            "AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.test\0x").decode()
        )
        assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")


def test_mail_without_auth_on_submission(server: TodokuServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.ehlo("laptop")
        assert "PLAIN" in client.esmtp_features["auth"] and "LOGIN" in client.esmtp_features["auth"]
        assert client.mail("alice@example.test") == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_auth_and_send(server: TodokuServer, mechanism: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.ehlo("laptop")
        client.user, client.password = "alice@example.test", PASSWORD
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == 235
        client.sendmail(
            "alice@example.test", ["alice@example.test"], b"Subject: via 587\r\n\r\nhi\r\n"
        )
    [stored] = mailbox_contents(server, "alice@example.test")
    parsed = message_from_bytes(stored)
    assert (
        "ESMTPSA" in parsed["Received"]
        and "Authenticated sender: alice@example.test" in parsed["Received"]
    )
    assert "TLSv1." in parsed["Received"]
    assert parsed["Message-ID"] and parsed["Date"], (
        "submission adds Message-ID and Date when missing"
    )
    assert PASSWORD not in server.log()


def test_implicit_tls_submission(server: TodokuServer) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.login("alice@example.test", PASSWORD)
        client.sendmail(
            "alice@example.test",
            ["alice@example.test"],
            b"Message-ID: <keep@x>\r\nSubject: via 465\r\n\r\nhi\r\n",
        )
    [stored] = mailbox_contents(server, "alice@example.test")
    assert message_from_bytes(stored).get_all("Message-ID") == ["<keep@x>"]


def test_bad_password(server: TodokuServer) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.ehlo("laptop")
        code, text = client.docmd(
            "AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.test\0wrong").decode()
        )
        assert (code, text) == (535, b"5.7.8 Authentication credentials invalid")


def test_sender_not_owned_and_alias_owned(server: TodokuServer) -> None:
    server.cli("alias", "add", "sales@example.test", "alice@example.test")
    with submission_client(server) as client:
        code, text = client.mail("bob@example.test")
        assert (code, text) == (
            553,
            b"5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test",
        )
        client.rset()
        assert client.mail("Sales@Example.Test")[0] == 250
        assert client.rcpt("friend@remote.test")[0] == 250  # authenticated: relaying allowed
        assert client.data(b"Subject: from alias\r\n\r\nhi\r\n")[0] == 250
    queue = server.cli("queue", "list").stdout
    assert "friend@remote.test" in queue and "<Sales@example.test>" in queue


def test_repeated_auth_failures_are_locked_out(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(extra="lockout_after = 4\n", start=False)
    server.add_user("alice@example.test")
    server.start()
    codes = []
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], timeout=30, context=client_tls_context()
    ) as client:
        client.ehlo("guesser")
        for attempt in range(6):
            token = base64.b64encode(f"\0alice@example.test\0guess{attempt}".encode()).decode()
            try:
                code, _ = client.docmd("AUTH", "PLAIN " + token)
            except smtplib.SMTPServerDisconnected:
                break
            codes.append(code)
            if code == 421:
                break
    assert codes[:3] == [535, 535, 535]
    assert codes[-1] == 421
    # Even the right password is refused from that address for a while.
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], timeout=30, context=client_tls_context()
    ) as client:
        client.ehlo("guesser")
        token = base64.b64encode(f"\0alice@example.test\0{PASSWORD}".encode()).decode()
        assert client.docmd("AUTH", "PLAIN " + token)[0] == 421


# ---------------------------------------------------------------- real third-party clients


@pytest.mark.interop
def test_swaks_submission_starttls_auth(server: TodokuServer) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run(  # noqa: PLW1510 -- the returncode is checked below
        [
            swaks,
            "--server",
            "127.0.0.1",
            "--port",
            str(server.ports["submission"]),
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.test",
            "--to",
            "alice@example.test",
            "--header",
            "Subject: from swaks",
            "--body",
            "swaks body",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Ok: queued as" in result.stdout
    [stored] = mailbox_contents(server, "alice@example.test")
    assert b"Subject: from swaks" in stored and b"swaks body" in stored


@pytest.mark.interop
def test_swaks_sees_relay_denied(server: TodokuServer) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run(  # noqa: PLW1510 -- the returncode is checked below
        [
            swaks,
            "--server",
            "127.0.0.1",
            "--port",
            str(server.ports["smtp"]),
            "--from",
            "someone@remote.test",
            "--to",
            "victim@elsewhere.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "554 5.7.1 <victim@elsewhere.test>: Relay access denied" in result.stdout


@pytest.mark.interop
def test_msmtp_implicit_tls(server: TodokuServer, tmp_path: Path) -> None:
    msmtp = require_tool("msmtp")
    config = tmp_path / "msmtprc"
    config.write_text(
        "account default\nhost 127.0.0.1\n"
        f"port {server.ports['submissions']}\ntls on\ntls_starttls off\ntls_certcheck off\n"
        "auth on\nuser alice@example.test\n"
        f"password {PASSWORD}\nfrom alice@example.test\n"
    )
    config.chmod(0o600)
    message = b"To: alice@example.test\r\nSubject: from msmtp\r\n\r\nmsmtp body\r\n"
    result = subprocess.run(  # noqa: PLW1510 -- the returncode is checked below
        [msmtp, "-C", str(config), "-t"], input=message, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    [stored] = mailbox_contents(server, "alice@example.test")
    assert stored.endswith(message)


@pytest.mark.interop
def test_msmtp_reports_wrong_sender(server: TodokuServer, tmp_path: Path) -> None:
    msmtp = require_tool("msmtp")
    config = tmp_path / "msmtprc"
    config.write_text(
        "account default\nhost 127.0.0.1\n"
        f"port {server.ports['submission']}\ntls on\ntls_starttls on\ntls_certcheck off\n"
        f"auth on\nuser alice@example.test\npassword {PASSWORD}\nfrom boss@example.test\n"
    )
    config.chmod(0o600)
    result = subprocess.run(  # noqa: PLW1510 -- the returncode is checked below
        [msmtp, "-C", str(config), "alice@example.test"],
        input=b"Subject: x\r\n\r\ny\r\n",
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        b"553 5.7.1 <boss@example.test>: Sender address rejected: not owned by user"
        in result.stderr
    )


# ---------------------------------------------------------------- shutdown and configuration


def test_sigterm_gives_421_to_open_sessions_and_keeps_acknowledged_mail(
    server: TodokuServer,
) -> None:
    idle = socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15)
    idle_reader = idle.makefile("rb")
    assert idle_reader.readline().startswith(b"220")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.sendmail(
            "a@remote.test", ["alice@example.test"], b"Subject: before stop\r\n\r\nx\r\n"
        )
    in_data = socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15)
    data_reader = in_data.makefile("rb")
    data_reader.readline()
    in_data.sendall(
        b"HELO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
    )
    for _ in range(4):
        data_reader.readline()
    in_data.sendall(b"Subject: unfinished\r\n\r\npart")
    time.sleep(0.3)
    assert server.stop() == 0
    assert (
        idle_reader.readline()
        == b"421 4.3.2 Service shutting down, closing transmission channel\r\n"
    )
    assert data_reader.readline().startswith(b"421 4.3.2")
    idle.close()
    in_data.close()
    stored = mailbox_contents(server, "alice@example.test")
    assert len(stored) == 1 and b"before stop" in stored[0]


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(  # noqa: PLW1510 -- the callers check the exit status
        [sys.executable, "-m", "todoku", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            'domains = ["example.test"]\nfrobnicate = 1\n[listen]\nsmtp = "127.0.0.1:0"\n',
            "frobnicate: unknown key",
        ),
        ('domains = ["example.test"]\n[listen]\nsmtp = "nowhere"\n', "listen.smtp:"),
        (
            'domains = ["example.test"]\n[listen]\nsmtp = "127.0.0.1:0"\n[tls]\ncert = "missing.pem"\nkey = "k.pem"\n',
            "tls.cert: no such file",
        ),
        (
            'domains = ["example.test"]\n[listen]\nsmtp = "127.0.0.1:0"\n[limits]\nmax_message_size = "big"\n',
            "limits.max_message_size: not a size",
        ),
        ('domains = "example.test"\n[listen]\nsmtp = "127.0.0.1:0"\n', "domains: expected a list"),
        (
            'domains = ["example.test"]\nlang = "fr"\n[listen]\nsmtp = "127.0.0.1:0"\n',
            "lang: must be",
        ),
        ('domains = ["example.test"\n', "not valid TOML"),
        (
            'domains = ["example.test"]\n[listen]\nsmtp = "127.0.0.1:0"\n[limits]\nmax_connections = -5\n',
            "limits.max_connections: expected a whole number >= 1, got -5",
        ),
        (
            'domains = ["example.test"]\n[listen]\nsmtp = "127.0.0.1:0"\n[limits]\nmax_connections_per_ip = "50"\n',
            "limits.max_connections_per_ip: expected a whole number >= 0, got '50'",
        ),
    ],
)
def test_configuration_errors_are_one_line_and_status_2(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "todoku.toml"
    config.write_text(f'data_dir = "./data"\n{toml}')
    result = run_serve(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_configuration_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "todoku.toml"
        config.write_text(
            f'domains = ["example.test"]\ndata_dir = "./data"\n[listen]\nsmtp = "127.0.0.1:{port}"\n'
        )
        result = run_serve(config)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"todoku: configuration error: listen.smtp: 127.0.0.1:{port}: address already in use"
    )


def test_user_and_alias_commands(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(start=False)
    server.add_user("carol@example.test")
    assert "carol@example.test" in server.cli("user", "list").stdout
    duplicate = server.cli(
        "user", "add", "carol@example.test", "--password-stdin", input="whatever12\n", check=False
    )
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    foreign = server.cli(
        "user", "add", "dave@elsewhere.test", "--password-stdin", input="whatever12\n", check=False
    )
    assert foreign.returncode == 2 and "not a local domain" in foreign.stderr
    server.cli("user", "passwd", "carol@example.test", "--password-stdin", input="new password 1\n")
    server.cli("alias", "add", "info@example.test", "carol@example.test")
    assert "info@example.test -> carol@example.test" in server.cli("alias", "list").stdout
    server.start()
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.login("carol@example.test", "new password 1")
        client.sendmail("info@example.test", ["info@example.test"], b"Subject: alias\r\n\r\nx\r\n")
    assert len(mailbox_contents(server, "carol@example.test")) == 1
    server.cli("user", "del", "carol@example.test")
    assert "carol@example.test" not in server.cli("user", "list").stdout
    with (
        smtplib.SMTP_SSL(
            "127.0.0.1", server.ports["submissions"], timeout=15, context=client_tls_context()
        ) as client,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        client.login("carol@example.test", "new password 1")


def test_bdat_chunks_through_the_real_server(server: TodokuServer) -> None:
    """CHUNKING (RFC 3030): pipelined BDAT pieces, bare LF stored as CRLF, no 354."""
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO chunker.remote.test\r\n")
        capabilities = []
        while True:
            line = reader.readline()
            capabilities.append(line[4:].strip())
            if line[3:4] == b" ":
                break
        assert b"CHUNKING" in capabilities
        first, second = b"Subject: chunks\r\n\r\nline one\n", b"line two\r\n.not a terminator\r\n"
        sock.sendall(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
            + f"BDAT {len(first)}\r\n".encode()
            + first
            + f"BDAT {len(second)} LAST\r\n".encode()
            + second
            + b"QUIT\r\n"
        )
        replies = [reader.readline() for _ in range(5)]
    assert replies[0].startswith(b"250") and replies[1].startswith(b"250")
    assert replies[2] == f"250 2.0.0 Ok: {len(first)} octets received\r\n".encode()
    assert replies[3].startswith(b"250 2.0.0 Ok: queued as ")
    assert replies[4].startswith(b"221")
    [stored] = mailbox_contents(server, "alice@example.test")
    assert stored.endswith(b"Subject: chunks\r\n\r\nline one\r\nline two\r\n.not a terminator\r\n")
