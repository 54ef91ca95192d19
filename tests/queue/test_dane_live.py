"""DANE (RFC 7672) in direct delivery, with real sockets: the queue runner asks the loopback DNS
server (MX, A and TLSA records, some marked authenticated so they carry the AD bit) and
delivers to a fake MX with STARTTLS and a certificate from a trustme CA only when the
certificates it presents match the TLSA records.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import write_config
from tests.dnsserver import DnsServer
from tests.queue.fakerelay import FakeRelay, fake_relay
from tests.queue.harness import Queue, running_queue
from tests.queue.policyserver import policy_server
from tests.queue.reports import parse_report
from tests.queue.test_mtasts_live import nothing_in_clear, pending, policy
from todoku.dns.dnspython import DnspythonResolver
from todoku.net.smtp_client import verified_tls_context
from todoku.queue.mtasts import HttpsPolicyFetcher, MtaSts, PolicyCache, cache_directory

ALICE = "alice@example.test"
MX = "mx1.remote.test"
TLSA_NAME = f"_25._tcp.{MX}"


def ders(leaf: trustme.LeafCert) -> list[bytes]:
    return [
        x509.load_pem_x509_certificate(blob.bytes()).public_bytes(Encoding.DER)
        for blob in leaf.cert_chain_pems
    ]


def tlsa(usage: int, certificate: bytes) -> str:
    """``usage 1 1 <sha-256 of the SPKI>`` in zone-file text."""
    key = x509.load_der_x509_certificate(certificate).public_key()
    digest = hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return f"{usage} 1 1 {digest.hexdigest()}"


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    return context


def queue_show(tmp_path: Path, queue_id: str) -> str:
    """``todoku queue show`` with ``[dns] dnssec = "validating"``, as the queue runs here."""
    extra = '[dns]\ndnssec = "validating"\n'
    config = write_config(tmp_path, extra, services=("smtp",))
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "queue", "show", queue_id, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def signed_zone(dns: DnsServer, *, tlsa_secure: bool = True) -> None:
    """remote.test's MX and the MX host's address, DNSSEC-authenticated."""
    dns.add("remote.test", "MX", f"10 {MX}.")
    dns.add(MX, "A", "127.0.0.1")
    dns.authenticate("remote.test", MX)
    if tlsa_secure:
        dns.authenticate(TLSA_NAME)


@asynccontextmanager
async def setup(
    tmp_path: Path, dns: DnsServer, leaf: trustme.LeafCert, **options: object
) -> AsyncIterator[tuple[Queue, FakeRelay]]:
    """A fake MX presenting ``leaf`` and a queue with a validating resolver (unless
    ``dnssec=False``) whose certificate checks trust nothing but DANE."""
    options.setdefault("dnssec", True)
    async with (
        fake_relay(server_context(leaf)) as mx,
        running_queue(
            tmp_path / "data",
            dns.address,
            mx.port,
            self_addresses=(),
            **options,  # type: ignore[arg-type]
        ) as q,
    ):
        yield q, mx


async def test_dane_ee_match_delivers_over_tls(tmp_path: Path, dns_server: DnsServer) -> None:
    leaf = trustme.CA().issue_cert("not-the-mx-name.test")  # DANE-EE checks no name
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(3, ders(leaf)[0]))
    async with setup(tmp_path, dns_server, leaf) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    [message] = mx.messages
    assert message.recipients == ["bob@remote.test"]
    assert nothing_in_clear(mx)
    assert (TLSA_NAME, "TLSA") in dns_server.queries


async def test_dane_ee_mismatch_defers_never_in_clear_and_says_why(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(MX)
    published = ca.issue_cert(MX)  # the key the zone names is not the one the server has
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(3, ders(published)[0]))
    async with setup(tmp_path, dns_server, leaf, retry=(0.3,), delay_warning=0.5) as (q, mx):
        queue_id = await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(q.mailbox(ALICE)))  # the delay warning
        seen = pending(q)
        shown = queue_show(tmp_path, queue_id)
        [warning] = q.mailbox(ALICE)
    assert seen["state"] == "pending" and seen["phase"] == "tls"
    assert "DANE (RFC 7672)" in seen["text"] and TLSA_NAME in seen["text"]
    assert "matches none of the TLSA records" in seen["text"]
    assert "nothing was sent" in seen["text"]
    assert mx.connections >= 1 and mx.messages == [] and nothing_in_clear(mx)
    shown = " ".join(shown.split())
    assert "matches none of the TLSA records" in shown
    assert "DANE (RFC 7672) on: MX hosts with DNSSEC-signed TLSA records" in shown
    [recipient] = parse_report(warning).recipients
    assert recipient["Action"] == "delayed" and recipient["Status"] == "4.7.5"
    assert "DANE (RFC 7672)" in " ".join(warning.decode("utf-8", "replace").split())


async def test_dane_ta_match_with_the_mx_name_delivers(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    issuer = trustme.CA().create_child_ca()
    leaf = issuer.issue_cert(MX)
    chain = ders(leaf)
    assert len(chain) == 2  # leaf and the issuer named by the DANE-TA record
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(2, chain[1]))
    async with setup(tmp_path, dns_server, leaf) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert [m.recipients for m in mx.messages] == [["bob@remote.test"]]
    assert nothing_in_clear(mx)


async def test_dane_ta_with_another_name_defers(tmp_path: Path, dns_server: DnsServer) -> None:
    issuer = trustme.CA().create_child_ca()
    leaf = issuer.issue_cert("imposter.test")
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(2, ders(leaf)[1]))
    async with setup(tmp_path, dns_server, leaf, retry=(3600.0,)) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(pending(q)))
        seen = pending(q)
    assert seen["state"] == "pending" and seen["phase"] == "tls"
    assert "is for imposter.test, not mx1.remote.test" in seen["text"]
    assert mx.messages == [] and nothing_in_clear(mx)


async def test_without_a_validating_resolver_dane_is_off(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    # The same zone as the mismatch test, AD bits and all: they count for nothing unless the
    # resolver is declared validating, so the mail goes with opportunistic TLS.
    ca = trustme.CA()
    leaf = ca.issue_cert(MX)
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(3, ders(ca.issue_cert(MX))[0]))
    async with setup(tmp_path, dns_server, leaf, dnssec=False) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert len(mx.messages) == 1 and nothing_in_clear(mx)  # opportunistic TLS was used
    assert (TLSA_NAME, "TLSA") not in dns_server.queries


async def test_insecure_tlsa_records_are_ignored(tmp_path: Path, dns_server: DnsServer) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(MX)
    signed_zone(dns_server, tlsa_secure=False)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(3, ders(ca.issue_cert(MX))[0]))
    async with setup(tmp_path, dns_server, leaf) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert len(mx.messages) == 1
    assert (TLSA_NAME, "TLSA") in dns_server.queries  # asked, and judged insecure


async def test_a_tlsa_servfail_in_a_signed_zone_defers_without_dialling(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    leaf = trustme.CA().issue_cert(MX)
    signed_zone(dns_server)
    dns_server.servfail(TLSA_NAME)
    async with setup(tmp_path, dns_server, leaf, retry=(3600.0,)) as (q, mx):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(pending(q)))
        seen = pending(q)
    assert seen["state"] == "pending"
    assert f"the TLSA lookup for {TLSA_NAME} failed" in seen["text"]
    assert "RFC 7672 §2.2" in seen["text"]
    assert mx.connections == 0 and mx.messages == []


def carol_tried(q: Queue) -> bool:
    return any(
        r.address == "carol@other.test" and r.last_reply
        for entry in q.store.list_queue()
        for r in entry.recipients
    )


async def test_dane_takes_precedence_over_mta_sts(tmp_path: Path, dns_server: DnsServer) -> None:
    # Both domains publish an MTA-STS policy in enforce mode that lists another MX, and the
    # server's certificate is from a CA nobody trusts: MTA-STS alone refuses it, as other.test
    # shows. remote.test's MX has a matching TLSA record, and DANE decides (RFC 8461 §2).
    web_ca = trustme.CA()
    ca_file = tmp_path / "web-ca.pem"
    web_ca.cert_pem.write_to_path(str(ca_file))
    leaf = trustme.CA().issue_cert(MX, "mx2.other.test")
    signed_zone(dns_server)
    dns_server.add(TLSA_NAME, "TLSA", tlsa(3, ders(leaf)[0]))
    dns_server.add("other.test", "MX", "10 mx2.other.test.")
    dns_server.add("mx2.other.test", "A", "127.0.0.1")
    dns_server.authenticate("other.test", "mx2.other.test")  # signed, but without TLSA
    for domain in ("remote.test", "other.test"):
        dns_server.add(f"_mta-sts.{domain}", "TXT", '"v=STSv1; id=1"')
        dns_server.add(f"mta-sts.{domain}", "A", "127.0.0.1")
    web_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    web_ca.issue_cert("mta-sts.remote.test", "mta-sts.other.test").configure_cert(web_context)
    with policy_server(web_context) as web:
        web.body = policy("enforce", "mx9.remote.test")
        resolver = DnspythonResolver((dns_server.address,), lifetime=2.0)
        fetcher = HttpsPolicyFetcher(resolver, ca_file=str(ca_file), port=web.port, timeout=5)
        mta_sts = MtaSts(resolver, fetcher, PolicyCache(cache_directory(tmp_path / "data")))
        async with setup(
            tmp_path,
            dns_server,
            leaf,
            mta_sts=mta_sts,
            verified_context=verified_tls_context(str(ca_file)),
            retry=(3600.0,),
        ) as (q, mx):
            await q.submit(["bob@remote.test", "carol@other.test"])
            await q.wait(lambda: bool(mx.messages) and bool(carol_tried(q)))
            [entry] = q.store.list_queue()
    [message] = mx.messages
    assert message.recipients == ["bob@remote.test"] and nothing_in_clear(mx)
    [(carol, text)] = [(r.address, r.last_reply) for r in entry.recipients if r.state == "pending"]
    assert carol == "carol@other.test" and "publishes an MTA-STS policy" in text
