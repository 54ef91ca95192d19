"""Routing decisions against DNS tables (MockResolver): no network."""

from __future__ import annotations

from todoku.dns.mock import MockResolver
from todoku.dns.resolver import DnsStatus
from todoku.outcome import Verdict
from todoku.queue.model import Hop
from todoku.queue.routing import route

HOSTNAME = "mx.example.test"


def not_self(host: str, ip: str) -> bool:
    return host == HOSTNAME or ip == "192.0.2.1"


def reverse(hops: list[Hop]) -> None:
    hops.reverse()


async def test_mx_sorted_by_preference_equal_ones_shuffled() -> None:
    resolver = MockResolver(
        mx_records={"d.test": [(20, "c.d.test"), (10, "a.d.test"), (10, "b.d.test")]},
        hosts={
            "a.d.test": ["198.51.100.1"],
            "b.d.test": ["2001:db8::2", "198.51.100.2"],
            "c.d.test": ["198.51.100.3"],
        },
    )
    plain = await route(resolver, "d.test", is_self=not_self, shuffle=lambda hops: None)
    assert [h.ip for h in plain.hops] == [
        "198.51.100.1",
        "2001:db8::2",
        "198.51.100.2",
        "198.51.100.3",
    ]
    shuffled = await route(resolver, "d.test", is_self=not_self, shuffle=reverse)
    assert [h.host for h in shuffled.hops] == ["b.d.test", "b.d.test", "a.d.test", "c.d.test"]


async def test_implicit_mx_uses_the_domains_own_address() -> None:
    resolver = MockResolver(hosts={"d.test": ["198.51.100.9"]})
    result = await route(resolver, "d.test", is_self=not_self)
    assert result.failure is None
    assert result.hops == (Hop("d.test", "198.51.100.9", 0),)


async def test_null_mx_is_permanent_5_1_10() -> None:
    resolver = MockResolver(mx_records={"d.test": [(0, ".")]})
    result = await route(resolver, "d.test", is_self=not_self)
    assert result.failure is not None
    assert result.failure.verdict is Verdict.PERMANENT
    assert result.failure.status == "5.1.10"
    assert "does not accept mail" in result.failure.text


async def test_nxdomain_is_permanent_host_unknown() -> None:
    result = await route(MockResolver(), "gmial.test", is_self=not_self)
    assert result.failure is not None
    assert (result.failure.verdict, result.failure.status) == (Verdict.PERMANENT, "5.1.2")
    assert result.failure.reason == "hostunknown"


async def test_servfail_and_timeout_are_temporary() -> None:
    for status in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT):
        result = await route(MockResolver(fail={"d.test": status}), "d.test", is_self=not_self)
        assert result.failure is not None
        assert result.failure.verdict is Verdict.TEMPORARY, status
        assert result.failure.status.startswith("4.")


async def test_mx_pointing_back_at_us_is_a_local_configuration_error() -> None:
    by_name = MockResolver(mx_records={"d.test": [(10, HOSTNAME)]}, hosts={HOSTNAME: ["192.0.2.1"]})
    by_address = MockResolver(
        mx_records={"d.test": [(10, "alias.d.test")]}, hosts={"alias.d.test": ["192.0.2.1"]}
    )
    for resolver in (by_name, by_address):
        result = await route(resolver, "d.test", is_self=not_self)
        assert result.failure is not None
        assert (result.failure.verdict, result.failure.status) == (Verdict.PERMANENT, "5.4.6")
        assert "Local configuration error" in result.failure.text


async def test_less_preferred_than_us_are_dropped_but_better_ones_kept() -> None:
    # RFC 5321 §5.1: we are a backup MX; only hosts better than us are tried.
    resolver = MockResolver(
        mx_records={"d.test": [(10, "primary.d.test"), (20, HOSTNAME), (30, "other.d.test")]},
        hosts={"primary.d.test": ["198.51.100.1"], "other.d.test": ["198.51.100.3"]},
    )
    result = await route(resolver, "d.test", is_self=not_self)
    assert [h.host for h in result.hops] == ["primary.d.test"]


async def test_address_literal_skips_dns() -> None:
    result = await route(MockResolver(), "[198.51.100.7]", is_self=not_self)
    assert result.hops == (Hop("", "198.51.100.7", 0),)


async def test_mx_hosts_without_addresses() -> None:
    resolver = MockResolver(mx_records={"d.test": [(10, "gone.d.test")]})
    result = await route(resolver, "d.test", is_self=not_self)
    assert result.failure is not None and result.failure.verdict is Verdict.PERMANENT
    temp = MockResolver(
        mx_records={"d.test": [(10, "slow.d.test")]}, fail={"slow.d.test": DnsStatus.TIMEOUT}
    )
    result = await route(temp, "d.test", is_self=not_self)
    assert result.failure is not None and result.failure.verdict is Verdict.TEMPORARY
