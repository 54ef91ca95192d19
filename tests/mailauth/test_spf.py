"""SPF evaluation (RFC 7208) against zones served by the loopback DNS server."""

from __future__ import annotations

import pytest

from tests.dnsserver import DnsServer
from todoku.mailauth import spf
from todoku.mailauth.lookup import ResolverLookups


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    dns_server.add(
        "sender.test",
        "TXT",
        '"v=spf1 ip4:192.0.2.0/24 mx a:relay.sender.test include:_spf.partner.test -all"',
    )
    dns_server.add("sender.test", "MX", "10 mx.sender.test.")
    dns_server.add("mx.sender.test", "A", "198.51.100.7")
    dns_server.add("relay.sender.test", "A", "198.51.100.9")
    dns_server.add("relay.sender.test", "AAAA", "2001:db8::9")
    dns_server.add("_spf.partner.test", "TXT", '"v=spf1 ip6:2001:db8:1::/48 ~all"')
    dns_server.add("soft.test", "TXT", '"v=spf1 ip4:192.0.2.1 ~all"')
    dns_server.add("neutral.test", "TXT", '"v=spf1 ?all"')
    dns_server.add("redirected.test", "TXT", '"v=spf1 redirect=sender.test"')
    dns_server.add("exists.test", "TXT", '"v=spf1 exists:%{i}.allow.exists.test -all"')
    dns_server.add("203.0.113.5.allow.exists.test", "A", "127.0.0.2")
    dns_server.add("two.test", "TXT", '"v=spf1 -all"')
    dns_server.add("two.test", "TXT", '"v=spf1 +all"')
    dns_server.add("syntax.test", "TXT", '"v=spf1 ip4:192.0.2.1 bogus:x -all"')
    dns_server.add("split.test", "TXT", '"v=spf1 ip4:192.0.2.77 " "-all"')
    dns_server.exists("nospf.test")
    dns_server.servfail("broken.test")
    dns_server.add("loop.test", "TXT", '"v=spf1 include:loop.test -all"')
    dns_server.add("include-broken.test", "TXT", '"v=spf1 include:broken.test -all"')
    dns_server.add(
        "many.test", "TXT", '"v=spf1 ' + " ".join(f"a:h{i}.many.test" for i in range(11)) + ' -all"'
    )
    for i in range(11):
        dns_server.add(f"h{i}.many.test", "A", "203.0.113.200")
    dns_server.add("void.test", "TXT", '"v=spf1 a:x1.void.test a:x2.void.test a:x3.void.test -all"')
    return dns_server


@pytest.mark.parametrize(
    ("ip", "domain", "expected"),
    [
        ("192.0.2.44", "sender.test", spf.PASS),  # ip4 network
        ("198.51.100.7", "sender.test", spf.PASS),  # mx
        ("198.51.100.9", "sender.test", spf.PASS),  # a:relay
        ("2001:db8::9", "sender.test", spf.PASS),  # a:relay over IPv6
        ("2001:db8:1::5", "sender.test", spf.PASS),  # include → pass
        ("203.0.113.1", "sender.test", spf.FAIL),  # -all
        ("203.0.113.1", "soft.test", spf.SOFTFAIL),
        ("203.0.113.1", "neutral.test", spf.NEUTRAL),
        ("192.0.2.44", "redirected.test", spf.PASS),
        ("203.0.113.1", "redirected.test", spf.FAIL),
        ("203.0.113.5", "exists.test", spf.PASS),  # macro %{i}
        ("203.0.113.6", "exists.test", spf.FAIL),
        ("192.0.2.77", "split.test", spf.PASS),  # a TXT record in two strings
        ("192.0.2.1", "nospf.test", spf.NONE),
        ("192.0.2.1", "nxdomain.test", spf.NONE),
        ("192.0.2.1", "two.test", spf.PERMERROR),  # RFC 7208 §4.5
        ("192.0.2.1", "syntax.test", spf.PERMERROR),
        ("192.0.2.1", "broken.test", spf.TEMPERROR),
        ("192.0.2.1", "include-broken.test", spf.TEMPERROR),
        ("192.0.2.1", "loop.test", spf.PERMERROR),
        ("203.0.113.200", "many.test", spf.PASS),  # the first term matches before the limit
        ("203.0.113.201", "many.test", spf.PERMERROR),  # 11 lookups > 10 (RFC 7208 §4.6.4)
        ("192.0.2.1", "void.test", spf.PERMERROR),  # 3 void lookups > 2
    ],
)
async def test_check_host(
    zone: DnsServer, lookups: ResolverLookups, ip: str, domain: str, expected: str
) -> None:
    assert await spf.check_host(lookups, ip, domain, f"user@{domain}", "client.test") == expected


async def test_null_sender_uses_helo(zone: DnsServer, lookups: ResolverLookups) -> None:
    zone.add("helo.sender.test", "TXT", '"v=spf1 ip4:192.0.2.5 -all"')
    passed = await spf.check_mail_from(lookups, "192.0.2.5", "", "helo.sender.test")
    failed = await spf.check_mail_from(lookups, "192.0.2.6", "", "helo.sender.test")
    assert (passed.result, passed.identity, passed.domain) == (spf.PASS, "helo", "helo.sender.test")
    assert failed.result == spf.FAIL


async def test_macro_expansion_follows_rfc7208_examples(lookups: ResolverLookups) -> None:
    # RFC 7208 §7.4 examples, sender strong-bad@email.example.com from 192.0.2.3.
    import ipaddress

    state = spf._State(
        ipaddress.ip_address("192.0.2.3"), "strong-bad@email.example.com", "h.test", lookups
    )
    assert spf.expand("%{s}", state, "email.example.com") == "strong-bad@email.example.com"
    assert spf.expand("%{d4}", state, "email.example.com") == "email.example.com"
    assert spf.expand("%{d2}", state, "email.example.com") == "example.com"
    assert spf.expand("%{dr}", state, "email.example.com") == "com.example.email"
    assert spf.expand("%{d2r}", state, "email.example.com") == "example.email"
    assert spf.expand("%{l-}", state, "email.example.com") == "strong.bad"
    assert spf.expand("%{lr-}", state, "email.example.com") == "bad.strong"
    assert (
        spf.expand("%{ir}.%{v}._spf.%{d2}", state, "email.example.com")
        == "3.2.0.192.in-addr._spf.example.com"
    )
