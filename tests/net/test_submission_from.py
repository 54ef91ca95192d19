"""Issue 12, item 11: the header From of an authenticated submission must name addresses the login
may send as, the rule MAIL FROM already follows; otherwise the end of DATA is refused with a reply
that says which address to use, and nothing is stored. One real server for the module, smtplib
over STARTTLS on the submission port."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context, write_config

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TodokuServer]:
    root = tmp_path_factory.mktemp("from-check")
    server = TodokuServer(root=root, config_path=write_config(root), data_dir=root / "data")
    server.add_user(ALICE)
    server.add_user("bob@example.test")
    server.cli("alias", "add", "sales@example.test", ALICE)
    server.start()
    yield server
    server.stop()


def send(server: TodokuServer, header: bytes, sender: str = ALICE) -> tuple[int, bytes]:
    """MAIL FROM (owned), RCPT, then DATA with ``header``: the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        assert client.mail(sender)[0] == 250
        assert client.rcpt("bob@example.test")[0] == 250
        return client.data(header + b"Subject: from check\r\n\r\nhello\r\n")


def stored_for_bob(server: TodokuServer) -> int:
    """How many messages bob's mailbox holds, read through the store (as POP3 reads it)."""
    from todoku.store.sqlite import SqliteStore

    store = SqliteStore(server.data_dir)
    try:
        return len(store.list_messages("bob@example.test"))
    finally:
        store.close()


@pytest.mark.parametrize(
    "header",
    [
        b"From: The Boss <boss@example.test>\r\n",
        b"From: bob@example.test\r\n",
        b"From: Alice <alice@example.test>, Bob <bob@example.test>\r\n",
        b"From: Alice <alice@example.test>\r\nFrom: bob@example.test\r\n",
        b"From: Alice <alice@example.test.evil.test>\r\n",
        b'From: "alice@example.test" <ceo@remote.test>\r\n',
        b'From: "postmaster@anything"@example.test\r\n',
    ],
)
def test_from_not_owned_is_refused_at_end_of_data(server: TodokuServer, header: bytes) -> None:
    before = stored_for_bob(server)
    code, text = send(server, header)
    assert code == 550, text
    assert text.startswith(b"5.7.1 Message rejected: From: <"), text
    assert b"is not owned by user alice@example.test; use <alice@example.test>" in text
    assert stored_for_bob(server) == before


@pytest.mark.parametrize(
    "header",
    [
        b"From: Alice <alice@example.test>\r\n",
        b"From: =?utf-8?b?44Ki44Oq44K5?= <Alice@EXAMPLE.Test>\r\n",  # display name kept, any case
        b'From: "Sales team" <sales@example.test>\r\n',  # an alias that delivers to her
        b"From: alice@example.test (Alice)\r\n",
        b"",  # no From field: nothing is claimed
    ],
)
def test_from_owned_is_accepted(server: TodokuServer, header: bytes) -> None:
    before = stored_for_bob(server)
    code, text = send(server, header)
    assert code == 250, text
    assert stored_for_bob(server) == before + 1


def test_unreadable_from_is_refused(server: TodokuServer) -> None:
    code, text = send(server, b"From: alice@example.test <boss@example.test>\r\n")
    assert (code, text.split(b" ", 1)[0]) == (550, b"5.6.0"), text
    assert b"cannot read the From: header field" in text
    code, text = send(server, b"From: " + b"(" * 1000 + b"alice@example.test\r\n")
    assert code == 550, text


def test_mx_mail_is_not_held_to_the_rule(server: TodokuServer) -> None:
    """Unauthenticated mail to a local user keeps any From (the MX checks DMARC instead)."""
    before = stored_for_bob(server)
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.sendmail(
            "news@remote.test",
            ["bob@example.test"],
            b"From: News <news@remote.test>\r\nSubject: from check\r\n\r\nhi\r\n",
        )
    assert stored_for_bob(server) == before + 1


def test_from_past_the_header_scan_is_refused(server: TodokuServer) -> None:
    """A header section longer than the server reads before storing (256 KiB) cannot be checked:
    a From field hidden past it would still be what DKIM signs and readers see."""
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 900) for i in range(300))
    code, text = send(server, padding + b"From: The Boss <boss@example.test>\r\n")
    assert (code, text.split(b" ", 1)[0]) == (550, b"5.6.0"), text
    assert b"too long to check" in text
