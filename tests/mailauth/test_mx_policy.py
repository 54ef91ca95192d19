"""The MX's checks end to end: a real ``todoku serve``, a real SMTP client, DNS from the loopback
DNS server. Loopback is trusted by default, so these servers set ``trusted_networks = []``."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.net.test_smtp_e2e import mailbox_contents

CLIENT_IP = "127.0.0.1"


def policy_server(make_server: Callable[..., TodokuServer], dns_server: DnsServer, policy: str = "") -> TodokuServer:
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n\n[policy]\ntrusted_networks = []\n{policy}\n'
    server = make_server(extra=extra, services=("smtp",), start=False)
    server.add_user("alice@example.test")
    server.start()
    return server


def message(from_address: str, extra_headers: str = "") -> str:
    return f"From: <{from_address}>\r\nTo: alice@example.test\r\nSubject: policy\r\n{extra_headers}\r\nbody\r\n"


def mx(server: TodokuServer) -> smtplib.SMTP:
    client = smtplib.SMTP(CLIENT_IP, server.ports["smtp"], timeout=30)
    client.ehlo("client.remote.test")
    return client


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    dns_server.add("good.test", "TXT", f'"v=spf1 ip4:{CLIENT_IP} -all"')
    dns_server.add("_dmarc.good.test", "TXT", '"v=DMARC1; p=reject"')
    dns_server.add("bank.test", "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    dns_server.add("_dmarc.bank.test", "TXT", '"v=DMARC1; p=reject"')
    dns_server.add("shop.test", "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    dns_server.add("_dmarc.shop.test", "TXT", '"v=DMARC1; p=quarantine"')
    return dns_server


def test_dnsbl_listed_client_gets_the_known_reply(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    zone.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    server = policy_server(make_server, zone, 'dnsbl = ["clean.test", "bl.test"]')
    with mx(server) as client:
        client.mail("someone@good.test")
        code, text = client.rcpt("alice@example.test")
    assert code == 554
    assert text.decode() == "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using bl.test"
    assert ("1.0.0.127.clean.test", "A") in zone.queries
    assert mailbox_contents(server, "alice@example.test") == []


def test_unlisted_client_passes_and_result_header_is_stored(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone, 'dnsbl = ["bl.test"]')
    forged = "Authentication-Results: mx.example.test; dmarc=pass header.from=bank.test\r\n"
    with mx(server) as client:
        client.sendmail("someone@good.test", ["alice@example.test"], message("someone@good.test", forged))
    [stored] = mailbox_contents(server, "alice@example.test")
    fields = stored.split(b"\r\n\r\n", 1)[0].decode()
    assert fields.startswith("Received: ")
    results = [f for f in fields.split("\r\n") if f.startswith("Authentication-Results:")]
    assert len(results) == 1, fields  # ours; the forged one claiming our name is gone
    assert "spf=pass smtp.mailfrom=someone@good.test" in fields
    assert "dmarc=pass policy.dmarc=reject header.from=good.test" in fields
    assert "X-Todoku-Junk" not in fields
    assert fields.index("Received:") < fields.index("Authentication-Results:") < fields.index("From:")


def test_dmarc_reject_says_which_check_failed(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone)
    with mx(server) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("phisher@bank.test", ["alice@example.test"], message("service@bank.test"))
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.7.1 Message rejected: the DMARC policy of bank.test says reject")
    assert "SPF fail for bank.test" in text and "no DKIM signature" in text
    assert mailbox_contents(server, "alice@example.test") == []


def test_dmarc_quarantine_is_marked_junk(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone)
    with mx(server) as client:
        client.sendmail("x@shop.test", ["alice@example.test"], message("x@shop.test", "X-Todoku-Junk: no\r\n"))
    [stored] = mailbox_contents(server, "alice@example.test")
    fields = stored.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Todoku-Junk: yes" in fields and "X-Todoku-Junk: no" not in fields
    assert "dmarc=fail policy.dmarc=quarantine header.from=shop.test" in fields


def test_connection_rate_limit(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone, "authentication = false\nmax_connections_per_minute = 2")
    for _ in range(2):
        with mx(server) as client:
            assert client.noop()[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(CLIENT_IP, server.ports["smtp"], timeout=30)
    assert refused.value.smtp_code == 421
    assert refused.value.smtp_error.decode().startswith("4.7.0 Error: too many connections from [127.0.0.1]")


def test_message_rate_limit(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone, "authentication = false\nmax_messages_per_minute = 1")
    with mx(server) as client:
        client.sendmail("a@good.test", ["alice@example.test"], message("a@good.test"))
        code, text = client.mail("a@good.test")
    assert code == 421 and text.decode().startswith("4.7.0 Error: too many messages from [127.0.0.1]")


def test_greylisting_refuses_first_then_accepts(make_server, zone: DnsServer) -> None:  # type: ignore[no-untyped-def]
    server = policy_server(make_server, zone, 'authentication = false\ngreylist = true\ngreylist_delay = "0s"')
    with mx(server) as client:
        client.mail("a@good.test")
        code, text = client.rcpt("alice@example.test")
        assert code == 450 and text.decode().startswith("4.7.1 Recipient address rejected: Greylisted")
        client.rset()
        client.sendmail("a@good.test", ["alice@example.test"], message("a@good.test"))
    assert len(mailbox_contents(server, "alice@example.test")) == 1


def test_submission_and_trusted_clients_skip_every_check(make_server, dns_server: DnsServer) -> None:  # type: ignore[no-untyped-def]
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n\n[policy]\ndnsbl = ["bl.test"]\n'
    server = make_server(extra=extra, services=("smtp",), start=False)
    server.add_user("alice@example.test")
    server.start()
    dns_server.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    with mx(server) as client:
        client.sendmail("a@bank.test", ["alice@example.test"], message("a@bank.test"))
    [stored] = mailbox_contents(server, "alice@example.test")
    assert b"Authentication-Results" not in stored
    assert dns_server.queries == []  # loopback is trusted by default: not one DNS question
