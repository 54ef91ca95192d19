"""MTA-STS (RFC 8461) without the queue: record and policy syntax, MX matching, the policy cache
in virtual time (DNS as tables, a scripted fetcher), and the real HTTPS fetcher against a
loopback server with a test CA."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.queue.fakerelay import RelayCa, make_ca
from tests.queue.policyserver import policy_server
from todoku.dns.dnspython import DnspythonResolver
from todoku.dns.mock import MockResolver
from todoku.dns.resolver import DnsStatus
from todoku.queue.mtasts import (
    MAX_MAX_AGE,
    RETRY_FETCH_AFTER,
    CachedPolicy,
    CertificateError,
    FetchError,
    HttpsPolicyFetcher,
    MtaSts,
    Policy,
    PolicyCache,
    PolicyError,
    describe_cached,
    parse_policy,
    parse_record,
)
from todoku.queue.schedule import FakeClock

ENFORCE = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.remote.test\r\nmax_age: 86400\r\n"


# ---------------------------------------------------------------- syntax (RFC 8461 §3.1, §3.2)


def test_record_id_and_what_is_not_a_record() -> None:
    assert parse_record("v=STSv1; id=20160831085700Z;") == "20160831085700Z"
    assert parse_record("v=STSv1;id=abc; ext=1") == "abc"
    assert parse_record("v=spf1 -all") is None
    assert parse_record("v=STSv1 ; id=abc") is None  # §3.1: must begin with "v=STSv1;"
    for bad in ("v=STSv1;", "v=STSv1; id=", "v=STSv1; id=a-b", "v=STSv1; id=" + "a" * 33):
        with pytest.raises(PolicyError):
            parse_record(bad)


def test_policy_fields_line_ends_and_unknown_keys() -> None:
    policy = parse_policy(
        "version: STSv1\nmode: testing\nmx: MX1.Example.com.\nmx: *.example.net\n"
        "max_age: 604800\nextension: ignored\n"
    )
    assert policy == Policy("testing", ("mx1.example.com", "*.example.net"), 604800)
    assert parse_policy(ENFORCE.decode()).mode == "enforce"
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999").max_age == MAX_MAX_AGE


@pytest.mark.parametrize(
    "text",
    [
        "mode: enforce\nmx: a.test\nmax_age: 1",  # no version
        "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1",
        "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1",
        "version: STSv1\nmode: enforce\nmax_age: 1",  # enforce without mx
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1d",
        "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\nno colon here",
        "<html>not found</html>",
    ],
)
def test_policy_errors(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_mx_patterns_match_per_rfc_8461_section_4_1() -> None:
    policy = Policy("enforce", ("mail.example.com", "*.example.net"), 1)
    assert policy.matches("mail.example.com") and policy.matches("MAIL.example.com.")
    assert policy.matches("mx1.example.net")
    assert not policy.matches("example.net")  # the wildcard stands for exactly one label
    assert not policy.matches("a.b.example.net")
    assert not policy.matches("mail.example.com.evil.test")
    assert not policy.matches("xmail.example.com")


# ---------------------------------------------------------------- discovery and cache (§3, §5.1)


@dataclass
class ScriptedFetcher:
    """Answers with ``text``, or raises FetchError when ``fail`` is set; counts the fetches."""

    text: str = ENFORCE.decode()
    fail: str = ""
    fetched: list[str] = field(default_factory=list)

    async def fetch(self, domain: str) -> str:
        self.fetched.append(domain)
        if self.fail:
            raise FetchError(self.fail)
        return self.text


def sts(
    tmp_path: Path, record: str = "v=STSv1; id=1"
) -> tuple[MtaSts, MockResolver, ScriptedFetcher, FakeClock]:
    resolver = MockResolver(txt_records={"_mta-sts.remote.test": [record]})
    fetcher = ScriptedFetcher()
    clock = FakeClock()
    return (
        MtaSts(resolver, fetcher, PolicyCache(tmp_path / "mta-sts"), clock),
        resolver,
        fetcher,
        clock,
    )


async def test_fetched_once_then_cached_on_disk_until_the_id_changes(tmp_path: Path) -> None:
    mta_sts, resolver, fetcher, clock = sts(tmp_path)
    first = await mta_sts.lookup("Remote.Test")
    assert first.note == "fetched" and first.policy is not None
    assert first.policy.policy.mx == ("mx1.remote.test",)
    clock.advance(3600)
    # A new MtaSts (a restart) reads the cache from disk: no second fetch.
    again = MtaSts(resolver, fetcher, PolicyCache(tmp_path / "mta-sts"), clock)
    assert (await again.lookup("remote.test")).note == "cached"
    assert fetcher.fetched == ["remote.test"]
    resolver.txt_records["_mta-sts.remote.test"] = ["v=STSv1; id=2"]
    fetcher.text = "version: STSv1\nmode: testing\nmx: mx2.remote.test\nmax_age: 86400\n"
    changed = await again.lookup("remote.test")
    assert changed.note == "fetched" and changed.policy is not None
    assert changed.policy.policy.mode == "testing" and changed.policy.id == "2"
    assert fetcher.fetched == ["remote.test"] * 2


async def test_refreshed_after_half_the_max_age(tmp_path: Path) -> None:
    mta_sts, _, fetcher, clock = sts(tmp_path)
    await mta_sts.lookup("remote.test")
    clock.advance(43200 - 1)
    assert (await mta_sts.lookup("remote.test")).note == "cached"
    clock.advance(1)
    assert (await mta_sts.lookup("remote.test")).note == "fetched"
    assert len(fetcher.fetched) == 2


async def test_a_failed_fetch_uses_the_cached_policy_until_it_expires(tmp_path: Path) -> None:
    mta_sts, resolver, fetcher, clock = sts(tmp_path)
    await mta_sts.lookup("remote.test")
    resolver.txt_records["_mta-sts.remote.test"] = ["v=STSv1; id=2"]
    fetcher.fail = "HTTP status 500 Internal Server Error"
    lookup = await mta_sts.lookup("remote.test")
    assert lookup.policy is not None and lookup.policy.id == "1"  # RFC 8461 §5.1
    assert "the cached policy applies" in lookup.note and "500" in lookup.note
    # No second fetch within RETRY_FETCH_AFTER, the cached policy still applies.
    clock.advance(RETRY_FETCH_AFTER - 1)
    assert (await mta_sts.lookup("remote.test")).policy is not None
    assert len(fetcher.fetched) == 2
    clock.advance(86400)  # past max_age: the cached policy has expired
    expired = await mta_sts.lookup("remote.test")
    assert expired.policy is None and "as if remote.test had no policy" in expired.note


async def test_record_gone_or_dns_failing_keeps_an_unexpired_cached_policy(tmp_path: Path) -> None:
    mta_sts, resolver, fetcher, _ = sts(tmp_path)
    await mta_sts.lookup("remote.test")
    resolver.fail["_mta-sts.remote.test"] = DnsStatus.SERVFAIL
    assert (await mta_sts.lookup("remote.test")).policy is not None
    del resolver.fail["_mta-sts.remote.test"]
    del resolver.txt_records["_mta-sts.remote.test"]
    lookup = await mta_sts.lookup("remote.test")
    assert lookup.policy is not None and "cached policy applies" in lookup.note
    assert len(fetcher.fetched) == 1


async def test_no_record_or_two_records_mean_no_policy(tmp_path: Path) -> None:
    mta_sts, resolver, fetcher, _ = sts(tmp_path)
    resolver.txt_records["_mta-sts.remote.test"] = ["v=STSv1; id=1", "v=STSv1; id=2"]
    assert (await mta_sts.lookup("remote.test")).policy is None
    resolver.txt_records["_mta-sts.remote.test"] = ["something else"]
    assert (await mta_sts.lookup("remote.test")).policy is None
    assert (await mta_sts.lookup("[192.0.2.1]")).policy is None
    assert fetcher.fetched == []


async def test_a_corrupt_cache_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    mta_sts, _, _, clock = sts(tmp_path)
    (tmp_path / "mta-sts").mkdir()
    (tmp_path / "mta-sts" / "remote.test.json").write_text("{not json")
    assert (await mta_sts.lookup("remote.test")).note == "fetched"
    cached = PolicyCache(tmp_path / "mta-sts").load("remote.test")
    assert cached is not None and cached.fetched_at == clock.now()
    text = describe_cached(tmp_path / "mta-sts", "remote.test", clock.now())
    assert text is not None and "mode enforce" in text and "mx1.remote.test" in text
    assert describe_cached(tmp_path / "mta-sts", "remote.test", clock.now() + 86400) is None


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = PolicyCache(tmp_path)
    entry = CachedPolicy("remote.test", "7", Policy("enforce", ("*.remote.test",), 60), 5.0)
    cache.store(entry)
    assert cache.load("remote.test") == entry
    assert cache.load("other.test") is None


# ---------------------------------------------------------------- the HTTPS fetcher (§3.3)


@pytest.fixture
def ca(tmp_path: Path) -> RelayCa:
    return make_ca(str(tmp_path))


def fetcher_for(dns_server: DnsServer, ca: RelayCa, port: int) -> HttpsPolicyFetcher:
    dns_server.add("mta-sts.remote.test", "A", "127.0.0.1")
    resolver = DnspythonResolver((dns_server.address,), lifetime=2.0)
    return HttpsPolicyFetcher(resolver, ca_file=ca.ca_file, port=port, timeout=5.0)


async def test_fetch_over_verified_https(dns_server: DnsServer, ca: RelayCa) -> None:
    with policy_server(ca.server_context("mta-sts.remote.test")) as web:
        web.body = ENFORCE
        text = await fetcher_for(dns_server, ca, web.port).fetch("remote.test")
    assert text == ENFORCE.decode()
    assert web.requests == [("/.well-known/mta-sts.txt", f"mta-sts.remote.test:{web.port}")]


async def test_fetch_refuses_a_certificate_for_another_name(
    dns_server: DnsServer, ca: RelayCa
) -> None:
    with policy_server(ca.server_context("www.remote.test")) as web:
        web.body = ENFORCE
        with pytest.raises(CertificateError, match="certificate not valid for mta-sts.remote.test"):
            await fetcher_for(dns_server, ca, web.port).fetch("remote.test")
    assert web.requests == []


async def test_fetch_does_not_follow_redirects(dns_server: DnsServer, ca: RelayCa) -> None:
    with policy_server(ca.server_context("mta-sts.remote.test")) as web:
        web.status = 301
        web.headers["Location"] = f"https://mta-sts.remote.test:{web.port}/elsewhere"
        with pytest.raises(FetchError, match="HTTP status 301"):
            await fetcher_for(dns_server, ca, web.port).fetch("remote.test")
    assert len(web.requests) == 1


async def test_fetch_reads_at_most_the_limit(dns_server: DnsServer, ca: RelayCa) -> None:
    with policy_server(ca.server_context("mta-sts.remote.test")) as web:
        web.body = ENFORCE + b"x: " + b"y" * (70 * 1024) + b"\r\n"
        with pytest.raises(FetchError, match="larger than 65536 bytes"):
            await fetcher_for(dns_server, ca, web.port).fetch("remote.test")


async def test_fetch_without_an_address(dns_server: DnsServer, ca: RelayCa) -> None:
    resolver = DnspythonResolver((dns_server.address,), lifetime=2.0)
    fetcher = HttpsPolicyFetcher(resolver, ca_file=ca.ca_file, port=1)
    with pytest.raises(FetchError, match="mta-sts.nowhere.test has no address"):
        await fetcher.fetch("nowhere.test")


async def test_a_silent_policy_server_does_not_hold_the_default_executor(
    dns_server: DnsServer, ca: RelayCa
) -> None:
    """Issue 12 attack pass: an unauthenticated client can make the server fetch policies from
    hosts of its choosing (a report to a@dN.attacker.test). Fetches that ran in the event loop's
    default executor held its few threads for the whole timeout, so POP3 logins, message
    acceptance and queue reads waited behind them (27 s for a POP3 login with 6 domains)."""
    import asyncio
    import socket
    import time
    from concurrent.futures import ThreadPoolExecutor

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # completes TCP handshakes, never answers the TLS one
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    fetcher = fetcher_for(dns_server, ca, silent.getsockname()[1])
    fetcher.timeout = 3.0
    try:
        fetch = asyncio.ensure_future(fetcher.fetch("remote.test"))
        await asyncio.sleep(0.5)  # the fetch is now waiting on the silent server
        start = time.monotonic()
        await loop.run_in_executor(None, time.sleep, 0)
        waited = time.monotonic() - start
        with pytest.raises(FetchError, match="no complete answer"):
            await fetch
    finally:
        silent.close()
    assert waited < 1.0
