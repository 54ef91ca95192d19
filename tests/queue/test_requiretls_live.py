"""REQUIRETLS (RFC 8689) in direct delivery, with real sockets: a message submitted with
REQUIRETLS goes to the MX only over STARTTLS with a certificate verified for the MX host name
and only when the MX advertises REQUIRETLS after STARTTLS, passing it on in MAIL FROM (§4.2.1);
it bounces with 5.7.10 when the MX cannot give verified TLS and with 5.7.30 when it does not
offer REQUIRETLS, never sending anything in clear or to a hop without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.queue.fakemx import FakeMx, fake_mxes
from tests.queue.fakerelay import RelayCa, make_ca
from tests.queue.harness import Queue, running_queue
from tests.queue.reports import parse_report
from todoku.net.smtp_client import verified_tls_context
from todoku.store.api import IncomingMessage, RemoteRecipient

ALICE = "alice@example.test"
MX = "mx1.remote.test"
EXTENSIONS = ("PIPELINING", "SIZE 10240000", "8BITMIME", "DSN", "SMTPUTF8")


@pytest.fixture
def ca(tmp_path: Path) -> RelayCa:
    return make_ca(str(tmp_path))


@contextmanager
def fake_mx(dns: DnsServer, **options: object) -> Iterator[FakeMx]:
    dns.add("remote.test", "MX", f"10 {MX}.")
    dns.add(MX, "A", "127.0.0.1")
    mx = FakeMx("127.0.0.1", 0, **options).start()  # type: ignore[arg-type]
    try:
        yield mx
    finally:
        mx.stop()


async def submit(q: Queue, *, requiretls: bool = True) -> str:
    writer = q.store.new_blob()
    writer.write(b"Subject: secret\r\nFrom: alice@example.test\r\n\r\nfor your eyes only\r\n")
    blob = await asyncio.to_thread(writer.finish)
    return await q.store.commit(
        IncomingMessage(
            blob=blob,
            sender=ALICE,
            remote=(RemoteRecipient("bob@remote.test"),),
            received_at=time.time(),
            subject="secret",
            submitted_by=ALICE,
            requiretls=requiretls,
        )
    )


async def deliver(tmp_path: Path, dns: DnsServer, ca: RelayCa, mx: FakeMx) -> Queue:
    async with running_queue(
        tmp_path / "data",
        dns.address,
        mx.port,
        self_addresses=(),
        verified_context=verified_tls_context(ca.ca_file),
        retry=(3600.0,),
    ) as q:
        queue_id = await submit(q)
        assert q.store.get_queue_entry(queue_id).requiretls  # type: ignore[union-attr]
        await q.wait(lambda: not q.store.list_queue())
        return q


async def test_verified_tls_and_requiretls_offered_delivers_with_requiretls_on_mail_from(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    extensions = (*EXTENSIONS, "REQUIRETLS")
    with fake_mx(dns_server, tls_context=ca.server_context(MX), extensions=extensions) as mx:
        q = await deliver(tmp_path, dns_server, ca, mx)
    [message] = mx.messages
    assert message.tls and message.recipients == ["bob@remote.test"]
    assert "REQUIRETLS" in message.mail_params.split()
    assert q.mailbox(ALICE) == []


async def test_verified_tls_without_requiretls_gets_nothing_and_bounces_5_7_30(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    with fake_mx(dns_server, tls_context=ca.server_context(MX), extensions=EXTENSIONS) as mx:
        q = await deliver(tmp_path, dns_server, ca, mx)
        [bounce] = q.mailbox(ALICE)
    assert mx.messages == []  # RFC 8689 §4.2.1: not transmitted to a hop without REQUIRETLS
    [recipient] = parse_report(bounce).recipients
    assert recipient["Action"] == "failed" and recipient["Status"] == "5.7.30"
    text = " ".join(bounce.decode("utf-8", "replace").split())
    assert "REQUIRETLS support required" in text
    assert f"{MX}" in text and "does not offer REQUIRETLS; nothing was sent" in text


@pytest.mark.parametrize("why", ["no STARTTLS", "certificate for another name"])
async def test_an_mx_without_verified_tls_bounces_5_7_10_and_nothing_goes_in_clear(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, why: str
) -> None:
    context = None if why == "no STARTTLS" else ca.server_context("imposter.test")
    with fake_mx(dns_server, tls_context=context, extensions=(*EXTENSIONS, "REQUIRETLS")) as mx:
        q = await deliver(tmp_path, dns_server, ca, mx)
        [bounce] = q.mailbox(ALICE)
    assert mx.messages == []  # the fake records only messages it took
    [recipient] = parse_report(bounce).recipients
    assert recipient["Action"] == "failed" and recipient["Status"] == "5.7.10"
    text = " ".join(bounce.decode("utf-8", "replace").split())
    assert "REQUIRETLS needed" in text
    assert "TLS with a verified certificate (RFC 8689)" in text
    if why == "no STARTTLS":
        assert "does not offer STARTTLS" in text
    else:
        assert "certificate" in text


async def test_a_message_without_requiretls_still_goes_opportunistically(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    with fake_mx(dns_server, tls_context=None, extensions=EXTENSIONS) as mx:
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, self_addresses=()
        ) as q:
            await submit(q, requiretls=False)
            await q.wait(lambda: not q.store.list_queue())
    [message] = mx.messages
    assert not message.tls and "REQUIRETLS" not in message.mail_params


# ------------------------------------------------------------------ several MX hosts (§4.2.1)

MX2 = "mx2.remote.test"


@contextmanager
def two_mxes(
    dns: DnsServer, ca: RelayCa, first: dict[str, object], second: dict[str, object]
) -> Iterator[tuple[FakeMx, FakeMx]]:
    """mx1 (preference 10) on 127.0.0.1 and mx2 (20) on 127.0.0.2, one port, each scripted."""
    dns.add("remote.test", "MX", f"10 {MX}.")
    dns.add("remote.test", "MX", f"20 {MX2}.")
    dns.add(MX, "A", "127.0.0.1")
    dns.add(MX2, "A", "127.0.0.2")
    with fake_mxes("127.0.0.1", "127.0.0.2") as (mx1, mx2):
        for mx, name, script in ((mx1, MX, first), (mx2, MX2, second)):
            mx.tls_context = ca.server_context(str(script.get("cert", name)))
            mx.extensions = (*EXTENSIONS, "REQUIRETLS") if script.get("requiretls") else EXTENSIONS
            if script.get("down"):
                mx.mode = "close"
        yield mx1, mx2


async def test_an_mx_without_requiretls_is_passed_over_for_the_next_that_has_it(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    with two_mxes(dns_server, ca, {}, {"requiretls": True}) as (mx1, mx2):
        q = await deliver(tmp_path, dns_server, ca, mx1)
    assert mx1.messages == []  # verified TLS, but no REQUIRETLS: nothing sent there
    [message] = mx2.messages
    assert message.tls and "REQUIRETLS" in message.mail_params.split()
    assert q.mailbox(ALICE) == []


async def test_an_mx_with_a_bad_certificate_is_passed_over_for_the_next(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    first = {"requiretls": True, "cert": "imposter.test"}
    with two_mxes(dns_server, ca, first, {"requiretls": True}) as (mx1, mx2):
        q = await deliver(tmp_path, dns_server, ca, mx1)
    assert mx1.messages == []
    assert [m.recipients for m in mx2.messages] == [["bob@remote.test"]]
    assert q.mailbox(ALICE) == []


async def test_no_mx_with_requiretls_bounces_5_7_30_naming_them_all(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    with two_mxes(dns_server, ca, {}, {"cert": "imposter.test"}) as (mx1, mx2):
        q = await deliver(tmp_path, dns_server, ca, mx1)
        [bounce] = q.mailbox(ALICE)
    assert mx1.messages == [] and mx2.messages == []
    [recipient] = parse_report(bounce).recipients
    assert recipient["Action"] == "failed" and recipient["Status"] == "5.7.30"
    text = " ".join(bounce.decode("utf-8", "replace").split())
    assert "REQUIRETLS support required" in text and MX in text


async def test_an_unreachable_mx_defers_rather_than_bounces(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    with two_mxes(dns_server, ca, {}, {"requiretls": True, "down": True}) as (mx1, mx2):
        async with running_queue(
            tmp_path / "data",
            dns_server.address,
            mx1.port,
            self_addresses=(),
            verified_context=verified_tls_context(ca.ca_file),
            retry=(3600.0,),
        ) as q:
            await submit(q)

            def deferred() -> bool:
                entries = q.store.list_queue()
                return bool(entries) and bool(entries[0].recipients[0].last_reply)

            await q.wait(deferred)
            [recipient] = q.store.list_queue()[0].recipients
            assert q.mailbox(ALICE) == []
    assert recipient.state == "pending"
    assert "REQUIRETLS (RFC 8689): no MX host could take this message" in recipient.last_reply
    assert f"{MX} [127.0.0.1]: no REQUIRETLS" in recipient.last_reply
    assert mx1.messages == [] and mx2.messages == []
