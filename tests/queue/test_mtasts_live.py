"""MTA-STS (RFC 8461) in direct delivery, with real sockets: the queue runner finds the policy
through the loopback DNS server (``_mta-sts`` TXT, MX, A records), fetches it from a loopback
HTTPS server with a trustme CA, and delivers to a fake MX built on todoku's own server core
(STARTTLS, certificate from the same CA) only as the policy allows.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.dnsserver import DnsServer
from tests.queue.fakerelay import FakeRelay, RelayCa, fake_relay, make_ca
from tests.queue.harness import Queue, running_queue
from tests.queue.policyserver import PolicyServer, policy_server
from tests.queue.reports import parse_report
from todoku.dns.dnspython import DnspythonResolver
from todoku.net.smtp_client import verified_tls_context
from todoku.queue.mtasts import (
    CachedPolicy,
    HttpsPolicyFetcher,
    MtaSts,
    Policy,
    PolicyCache,
    cache_directory,
)

ALICE = "alice@example.test"
MX = "mx1.remote.test"


def policy(mode: str, *mx: str) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), "max_age: 86400"]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def ca(tmp_path: Path) -> RelayCa:
    return make_ca(str(tmp_path))


def zone(dns: DnsServer, record_id: str = "1") -> None:
    dns.add("remote.test", "MX", f"10 {MX}.")
    dns.add(MX, "A", "127.0.0.1")
    dns.add("_mta-sts.remote.test", "TXT", f'"v=STSv1; id={record_id}"')
    dns.add("mta-sts.remote.test", "A", "127.0.0.1")


@asynccontextmanager
async def setup(
    tmp_path: Path, dns: DnsServer, ca: RelayCa, mx_name: str, body: bytes, **options: object
) -> AsyncIterator[tuple[Queue, FakeRelay, PolicyServer]]:
    """The policy server serving ``body``, a fake MX with a certificate for ``mx_name``, and a
    queue whose MTA-STS fetcher and MX certificate checks trust the test CA."""
    zone(dns)
    data = tmp_path / "data"
    with policy_server(ca.server_context("mta-sts.remote.test")) as web:
        web.body = body
        async with fake_relay(ca.server_context(mx_name)) as mx:
            resolver = DnspythonResolver((dns.address,), lifetime=2.0)
            fetcher = HttpsPolicyFetcher(resolver, ca_file=ca.ca_file, port=web.port, timeout=5)
            mta_sts = MtaSts(resolver, fetcher, PolicyCache(cache_directory(data)))
            async with running_queue(
                data,
                dns.address,
                mx.port,
                self_addresses=(),
                mta_sts=mta_sts,
                verified_context=verified_tls_context(ca.ca_file),
                **options,  # type: ignore[arg-type]
            ) as q:
                yield q, mx, web


def pending(q: Queue) -> dict[str, str]:
    entries = q.store.list_queue()
    if not entries or not entries[0].recipients[0].last_reply:
        return {}
    recipient = entries[0].recipients[0]
    return {"state": recipient.state, "phase": recipient.phase, "text": recipient.last_reply}


def nothing_in_clear(mx: FakeRelay) -> bool:
    clear = bytes(mx.clear_text).upper()
    return b"MAIL FROM" not in clear and b"RCPT TO" not in clear and b"DATA" not in clear


def queue_show(tmp_path: Path, queue_id: str) -> str:
    config = write_config(tmp_path, services=("smtp",))
    result = subprocess.run(
        [sys.executable, "-m", "todoku", "queue", "show", queue_id, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


async def test_enforce_delivers_to_a_listed_mx_over_verified_tls(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    async with setup(tmp_path, dns_server, ca, MX, policy("enforce", MX)) as (q, mx, web):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    [message] = mx.messages
    assert message.recipients == ["bob@remote.test"]
    assert nothing_in_clear(mx)
    assert [path for path, _ in web.requests] == ["/.well-known/mta-sts.txt"]
    cached = PolicyCache(cache_directory(tmp_path / "data")).load("remote.test")
    assert cached is not None and cached.policy.mx == (MX,) and cached.id == "1"


async def test_enforce_defers_when_no_mx_is_listed_and_queue_show_says_why(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    body = policy("enforce", "mx9.remote.test", "*.mail.remote.test")
    async with setup(tmp_path, dns_server, ca, MX, body, retry=(3600.0,)) as (q, mx, _):
        queue_id = await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(pending(q)))
        seen = pending(q)
        shown = queue_show(tmp_path, queue_id)
    assert seen["state"] == "pending" and seen["phase"] == "routing"
    assert "publishes an MTA-STS policy" in seen["text"]
    assert f"none of its MX hosts ({MX}) is allowed" in seen["text"]
    assert mx.connections == 0 and mx.messages == []
    assert "MTA-STS policy of remote.test (mode enforce, mx: mx9.remote.test" in shown
    assert "none of its MX hosts" in shown
    assert q.mailbox(ALICE) == []


async def test_enforce_defers_on_a_certificate_for_another_name_and_never_sends_in_clear(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    async with setup(
        tmp_path,
        dns_server,
        ca,
        "imposter.test",
        policy("enforce", MX),
        retry=(0.3,),
        delay_warning=0.5,
    ) as (q, mx, _):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(q.mailbox(ALICE)))  # the delay warning
        seen = pending(q)
        [warning] = q.mailbox(ALICE)
    assert seen["state"] == "pending" and seen["phase"] == "tls"
    assert "did not present a valid certificate for mx1.remote.test" in seen["text"]
    assert "nothing was sent without TLS" in seen["text"]
    assert mx.messages == [] and nothing_in_clear(mx)
    [recipient] = parse_report(warning).recipients
    assert recipient["Action"] == "delayed" and recipient["Status"] == "4.7.5"
    text = " ".join(warning.decode("utf-8", "replace").split())
    assert "the destination publishes an MTA-STS policy" in text
    assert "did not present a valid certificate" in text


async def test_a_failed_fetch_uses_the_cached_policy(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    # Cached yesterday under id 0, listing another MX; the TXT id is now 1, so todoku fetches,
    # the server fails, and the cached policy still decides (RFC 8461 §5.1).
    stale = Policy("enforce", ("mx9.remote.test",), 7 * 86400)
    PolicyCache(cache_directory(tmp_path / "data")).store(
        CachedPolicy("remote.test", "0", stale, time.time() - 86400)
    )
    async with setup(tmp_path, dns_server, ca, MX, b"", retry=(3600.0,)) as (q, mx, web):
        web.status = 500
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: bool(pending(q)))
        seen = pending(q)
    assert len(web.requests) == 1  # it did try to fetch
    assert seen["state"] == "pending" and "mx9.remote.test" in seen["text"]
    assert mx.connections == 0 and mx.messages == []


async def test_testing_mode_delivers_and_logs_what_enforce_would_refuse(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = policy("testing", MX)
    async with setup(tmp_path, dns_server, ca, "imposter.test", body) as (q, mx, _):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    [message] = mx.messages  # delivered (opportunistic TLS) despite the certificate
    assert message.recipients == ["bob@remote.test"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "MTA-STS testing: enforce mode would defer this" in logged
    assert "certificate" in logged


async def test_testing_mode_logs_an_unlisted_mx_and_delivers(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with setup(tmp_path, dns_server, ca, MX, policy("testing", "mx9.remote.test")) as (
        q,
        mx,
        _,
    ):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert len(mx.messages) == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"MTA-STS testing: {MX} is not an MX host the MTA-STS policy" in logged


async def test_mode_none_replaces_a_cached_enforce_policy(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stale = Policy("enforce", ("mx9.remote.test",), 7 * 86400)
    PolicyCache(cache_directory(tmp_path / "data")).store(
        CachedPolicy("remote.test", "0", stale, time.time())
    )
    body = b"version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"
    async with setup(tmp_path, dns_server, ca, "imposter.test", body) as (q, mx, _):
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert len(mx.messages) == 1  # unlisted MX, certificate for another name: delivered
    cached = PolicyCache(cache_directory(tmp_path / "data")).load("remote.test")
    assert cached is not None and cached.policy.mode == "none"
    assert "MTA-STS testing" not in "\n".join(r.getMessage() for r in caplog.records)
