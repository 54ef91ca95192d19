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
from tests.queue.fakemx import FakeMx
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
