"""Issue 12, finding 2: the server must not be a DKIM signing oracle.

With ``postmaster`` aliased to an outside address (as the README suggests), an unauthenticated
client once got arbitrary content signed ``d=example.test``: the quoted recipient
``"postmaster@(Authenticated sender: x)"@example.test`` resolved to postmaster, and the queue
signed whatever had the text "(Authenticated sender: " in its first Received field. Now signing
follows the queue entry's own record of an authenticated submission, and postmaster is only the
exact local part. Real server, real SMTP clients, DNS on loopback, a fake remote MX.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.dnsserver import DnsServer
from tests.mailauth.test_outbound_signing import published_keys, sending_server
from tests.queue.fakemx import FakeMx, fake_mxes
from todoku.mailauth.dkim import signature_keys, verify_signatures

ORACLE_RCPT = '"postmaster@(Authenticated sender: x)"@example.test'
FORGED_RECEIVED = (
    b"Received: from pc (unknown [192.0.2.7])\r\n"
    b"\t(Authenticated sender: alice@example.test)\r\n"
    b"\tby mx.example.test (todoku) with ESMTPSA id FORGED; Sat, 28 Nov 2026 03:00:00 +0000\r\n"
)


def content(subject: str) -> bytes:
    return (
        f"From: Alice <alice@example.test>\r\nTo: <bob@remote.test>\r\nSubject: {subject}\r\n\r\n"
        "Pay the bearer 1000 EUR.\r\n"
    ).encode()


@pytest.fixture
def remote_mx() -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2") as (fake,):
        yield fake


@pytest.fixture
def server(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, remote_mx: FakeMx
) -> TodokuServer:
    server = sending_server(make_server, dns_server, remote_mx.port)
    server.cli("alias", "add", "postmaster@example.test", "bob@remote.test")
    return server


def by_subject(mx: FakeMx, count: int) -> dict[bytes, bytes]:
    out = {}
    for received in mx.wait_for(count):
        subject = next(
            line for line in received.data.split(b"\r\n") if line.startswith(b"Subject:")
        )
        out[subject.removeprefix(b"Subject: ")] = received.data
    return out


def test_quoted_postmaster_is_unknown_and_forwarded_mail_is_never_signed(
    server: TodokuServer, remote_mx: FakeMx
) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=20) as client:
        client.ehlo("attacker.test")
        assert client.mail("eve@attacker.test")[0] == 250
        # RFC 5321 §4.5.1: postmaster is that exact local part; this one is nobody.
        code, text = client.rcpt(f"<{ORACLE_RCPT}>")
        assert (code, text.split()[0]) == (550, b"5.1.1"), text
        code, _ = client.rcpt('<"postmaster@anything"@example.test>')
        assert code == 550
        # The real postmaster (any case) is still forwarded, with a forged Received field that
        # names an authenticated sender of ours: it leaves unsigned all the same.
        assert client.rcpt("<PostMaster@example.test>")[0] == 250
        assert client.data(FORGED_RECEIVED + content("forwarded"))[0] == 250
    # An authenticated submission, for comparison: signed, and the signatures verify.
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as client:
        client.starttls(context=client_tls_context())
        client.login("alice@example.test", PASSWORD)
        assert (
            client.sendmail("alice@example.test", ["bob@remote.test"], content("submitted")) == {}
        )
    messages = by_subject(remote_mx, 2)
    forwarded, submitted = messages[b"forwarded"], messages[b"submitted"]
    assert b"(Authenticated sender: alice@example.test)" in forwarded
    assert signature_keys(forwarded) == []
    assert b"DKIM-Signature:" not in forwarded
    assert {d for d, _ in signature_keys(submitted)} == {"example.test"}
    results = verify_signatures(submitted, published_keys(server))
    assert [r.result for r in results] == ["pass", "pass"]
