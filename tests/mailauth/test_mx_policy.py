"""The MX's checks end to end: a real ``todoku serve``, a real SMTP client, DNS from the loopback
DNS server. Loopback is trusted by default, so these servers set ``trusted_networks = []``."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.net.test_smtp_e2e import mailbox_contents
from todoku.mailauth.dkim import KeyStore, Signer, verify_signatures

CLIENT_IP = "127.0.0.1"


def policy_server(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, policy: str = ""
) -> TodokuServer:
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n\n[policy]\ntrusted_networks = []\n{policy}\n'
    server = make_server(extra=extra, services=("smtp",), start=False)
    server.add_user("alice@example.test")
    server.start()
    return server


def message(from_address: str, extra_headers: str = "") -> str:
    return f"From: <{from_address}>\r\nTo: alice@example.test\r\nSubject: policy\r\n{extra_headers}\r\nbody\r\n"


def reply_text(error: bytes | str) -> str:
    return error.decode() if isinstance(error, bytes) else error


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


def test_dnsbl_listed_client_gets_the_known_reply(
    make_server: Callable[..., TodokuServer], zone: DnsServer
) -> None:
    zone.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    server = policy_server(make_server, zone, 'dnsbl = ["clean.test", "bl.test"]')
    with mx(server) as client:
        client.mail("someone@good.test")
        code, text = client.rcpt("alice@example.test")
    assert code == 554
    assert (
        text.decode() == "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using bl.test"
    )
    assert ("1.0.0.127.clean.test", "A") in zone.queries
    assert mailbox_contents(server, "alice@example.test") == []


def test_unlisted_client_passes_and_result_header_is_stored(
    make_server: Callable[..., TodokuServer], zone: DnsServer
) -> None:
    server = policy_server(make_server, zone, 'dnsbl = ["bl.test"]')
    forged = "Authentication-Results: mx.example.test; dmarc=pass header.from=bank.test\r\n"
    with mx(server) as client:
        client.sendmail(
            "someone@good.test", ["alice@example.test"], message("someone@good.test", forged)
        )
    [stored] = mailbox_contents(server, "alice@example.test")
    fields = stored.split(b"\r\n\r\n", 1)[0].decode()
    assert fields.startswith("Received: ")
    results = [f for f in fields.split("\r\n") if f.startswith("Authentication-Results:")]
    assert len(results) == 1, fields  # ours; the forged one claiming our name is gone
    assert "spf=pass smtp.mailfrom=someone@good.test" in fields
    assert "dmarc=pass policy.dmarc=reject header.from=good.test" in fields
    assert "X-Todoku-Junk" not in fields
    assert (
        fields.index("Received:") < fields.index("Authentication-Results:") < fields.index("From:")
    )


def test_dmarc_reject_says_which_check_failed(
    make_server: Callable[..., TodokuServer], zone: DnsServer
) -> None:
    server = policy_server(make_server, zone)
    with mx(server) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("phisher@bank.test", ["alice@example.test"], message("service@bank.test"))
    assert refused.value.smtp_code == 550
    text = reply_text(refused.value.smtp_error)
    assert text.startswith("5.7.1 Message rejected: the DMARC policy of bank.test says reject")
    assert "SPF fail for bank.test" in text and "no DKIM signature" in text
    assert mailbox_contents(server, "alice@example.test") == []


def test_dmarc_quarantine_is_marked_junk(
    make_server: Callable[..., TodokuServer], zone: DnsServer
) -> None:
    server = policy_server(make_server, zone)
    with mx(server) as client:
        client.sendmail(
            "x@shop.test", ["alice@example.test"], message("x@shop.test", "X-Todoku-Junk: no\r\n")
        )
    [stored] = mailbox_contents(server, "alice@example.test")
    fields = stored.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Todoku-Junk: yes" in fields and "X-Todoku-Junk: no" not in fields
    assert "dmarc=fail policy.dmarc=quarantine header.from=shop.test" in fields
    # Filed into Junk (made with its \\Junk role on the way), not INBOX: POP3 does not serve it.
    with mx(server) as client:
        client.sendmail("someone@good.test", ["alice@example.test"], message("someone@good.test"))
    assert folders_of(server, "alice@example.test") == ["INBOX", "Junk"]


def folders_of(server: TodokuServer, address: str) -> list[str]:
    from todoku.store.sqlite import SqliteStore

    store = SqliteStore(server.data_dir)
    try:
        assert len(store.list_maildrop(address)) == 1
        return sorted(m.folder for m in store.list_messages(address))
    finally:
        store.close()


def test_connection_rate_limit(make_server: Callable[..., TodokuServer], zone: DnsServer) -> None:
    server = policy_server(
        make_server, zone, "authentication = false\nmax_connections_per_minute = 2"
    )
    for _ in range(2):
        with mx(server) as client:
            assert client.noop()[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(CLIENT_IP, server.ports["smtp"], timeout=30)
    assert refused.value.smtp_code == 421
    assert reply_text(refused.value.smtp_error).startswith(
        "4.7.0 Error: too many connections from [127.0.0.1]"
    )


def test_message_rate_limit(make_server: Callable[..., TodokuServer], zone: DnsServer) -> None:
    server = policy_server(make_server, zone, "authentication = false\nmax_messages_per_minute = 1")
    with mx(server) as client:
        client.sendmail("a@good.test", ["alice@example.test"], message("a@good.test"))
        code, text = client.mail("a@good.test")
    assert code == 421 and text.decode().startswith(
        "4.7.0 Error: too many messages from [127.0.0.1]"
    )


def test_greylisting_refuses_first_then_accepts(
    make_server: Callable[..., TodokuServer], zone: DnsServer
) -> None:
    server = policy_server(
        make_server, zone, 'authentication = false\ngreylist = true\ngreylist_delay = "0s"'
    )
    with mx(server) as client:
        client.mail("a@good.test")
        code, text = client.rcpt("alice@example.test")
        assert code == 450 and text.decode().startswith(
            "4.7.1 Recipient address rejected: Greylisted"
        )
        client.rset()
        client.sendmail("a@good.test", ["alice@example.test"], message("a@good.test"))
    assert len(mailbox_contents(server, "alice@example.test")) == 1


def test_submission_and_trusted_clients_skip_every_check(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer
) -> None:
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


# -------------------------------------------------- large messages (issue 12, finding 7)

BIG = 20 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc (Linux only)")


def signed_message(signer: Signer, size: int) -> tuple[bytes, bytes]:
    """(DKIM-Signature fields, message) from someone@sender.test; the body is ``size`` octets
    of lines that end in whitespace, so relaxed canonicalisation has work to do."""
    line = b"x" * 60 + b" \t  spaced   out\r\n"
    body = line * (size // len(line))
    content = (
        b"From: Someone <someone@sender.test>\r\nTo: alice@example.test\r\n"
        b"Subject: large\r\nMessage-ID: <large@sender.test>\r\n\r\n" + body
    )
    return signer.signature_headers(content, "someone@sender.test"), content


def test_large_signed_message_is_checked_without_holding_it(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, tmp_path: Path
) -> None:
    signer = Signer(KeyStore(tmp_path), ("sender.test",))
    for key, _role in signer.keys("sender.test").published():
        text = key.record_text
        chunks = " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))
        dns_server.add(key.record_name, "TXT", chunks)
    dns_server.add("sender.test", "TXT", f'"v=spf1 ip4:{CLIENT_IP} -all"')
    dns_server.add("_dmarc.sender.test", "TXT", '"v=DMARC1; p=reject"')
    server = policy_server(make_server, dns_server)
    assert server.process is not None

    small_fields, small = signed_message(signer, 10_000)
    big_fields, big = signed_message(signer, BIG)
    # What dkimpy says about the same bytes read whole: the results must not change.
    keys = {key.record_name: [key.record_text] for key, _ in signer.keys("sender.test").published()}
    expected = [(r.result, r.algorithm) for r in verify_signatures(big_fields + big, keys)]
    assert expected == [("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    tampered = big_fields + big.replace(b"spaced   out", b"spaced   OUT", 1)

    with mx(server) as client:
        client.sendmail("someone@sender.test", ["alice@example.test"], small_fields + small)
        before = peak_rss(server.process.pid)  # every code path loaded, every buffer grown once
        client.sendmail("someone@sender.test", ["alice@example.test"], big_fields + big)
        after = peak_rss(server.process.pid)
        client.sendmail("someone@sender.test", ["alice@example.test"], tampered)

    # The old check held the message whole, and dkimpy canonicalised copies of it: the peak
    # rose by several times the message's size (192 MiB for this one). Read in pieces, the rise
    # is a few MiB (5 here), whatever the size: the bound is half the message, with room for
    # allocator noise.
    assert after - before < BIG // 2, f"peak RSS rose by {(after - before) >> 20} MiB"

    _small, stored_big, stored_tampered = mailbox_contents(server, "alice@example.test")
    for stored, sent in ((stored_big, big_fields + big), (stored_tampered, tampered)):
        fields = stored.split(b"\r\n\r\n", 1)[0].decode()
        assert stored.endswith(sent)  # the content is stored as sent, behind our fields
        assert "spf=pass smtp.mailfrom=someone@sender.test" in fields
        assert "dmarc=pass policy.dmarc=reject header.from=sender.test" in fields
    selectors = signer.keys("sender.test").active.selectors
    for selector, algorithm in zip(selectors, ("ed25519-sha256", "rsa-sha256"), strict=True):
        field = f"header.d=sender.test header.s={selector} header.a={algorithm}"
        assert f"dkim=pass {field}" in stored_big.decode()
        assert f'dkim=fail reason="body hash mismatch" {field}' in stored_tampered.decode()
