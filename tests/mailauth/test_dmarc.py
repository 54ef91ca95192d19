"""DMARC (RFC 7489) decisions and the inbound verdict, with policies served by the loopback DNS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from todoku.config.load import PolicyConfig
from todoku.mailauth import dmarc
from todoku.mailauth.inbound import InboundPolicy, strip_forged_fields
from todoku.mailauth.lookup import ResolverLookups


def message(from_domain: str) -> bytes:
    return (
        f"From: Someone <someone@{from_domain}>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
    ).encode()


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    dns_server.add("strict.test", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')
    dns_server.add("_dmarc.strict.test", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@strict.test"')
    dns_server.add("mail.strict.test", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')
    dns_server.add("quarantine.test", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')
    dns_server.add("_dmarc.quarantine.test", "TXT", '"v=DMARC1; p=quarantine"')
    dns_server.add("_dmarc.sampled.test", "TXT", '"v=DMARC1; p=reject; pct=20"')
    dns_server.add("sampled.test", "TXT", '"v=spf1 -all"')
    dns_server.add("_dmarc.aspf.test", "TXT", '"v=DMARC1; p=reject; aspf=s"')
    dns_server.add("sub.aspf.test", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')
    dns_server.add("_dmarc.parent.test", "TXT", '"v=DMARC1; p=none; sp=reject"')
    dns_server.add("_dmarc.nopolicy.test", "TXT", '"v=DMARC1; p=bogus"')
    dns_server.servfail("_dmarc.broken.test")
    return dns_server


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.com", "example.com"),
        ("mail.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("www.example.co.jp", "example.co.jp"),
        ("example.jp", "example.jp"),
        ("x.y.example.jp", "example.jp"),
        # Issue 12: suffixes a hand-kept list missed; the Public Suffix List knows them.
        ("attacker.co.th", "attacker.co.th"),
        ("mail.example.co.th", "example.co.th"),
        ("co.th", "co.th"),
        ("evil.github.io", "evil.github.io"),  # the private section: one owner per name
        ("www.victim.github.io", "victim.github.io"),
        ("Mail.Example.COM.", "example.com"),
    ],
)
def test_organizational_domain(domain: str, expected: str) -> None:
    assert dmarc.organizational_domain(domain) == expected


@pytest.mark.parametrize(
    ("identifier", "from_domain", "expected"),
    [
        ("attacker.co.th", "example.co.th", False),
        ("evil.github.io", "victim.github.io", False),
        ("mail.example.co.th", "example.co.th", True),
        ("a.victim.github.io", "victim.github.io", True),
    ],
)
def test_relaxed_alignment_stops_at_the_registrant(
    identifier: str, from_domain: str, expected: bool
) -> None:
    assert dmarc.aligned(identifier, from_domain, "r") is expected


async def test_policy_lookup_never_asks_the_registry(
    dns_server: DnsServer, lookups: ResolverLookups
) -> None:
    """RFC 7489 §6.6.3: the fallback is the organisational domain, never the public suffix."""
    dns_server.add("_dmarc.co.th", "TXT", '"v=DMARC1; p=reject"')
    dns_server.add("_dmarc.example.co.th", "TXT", '"v=DMARC1; p=none; sp=quarantine"')
    word, record, at_org = await dmarc.fetch_record(lookups, "mail.example.co.th")
    assert (word, at_org) == ("pass", True)
    assert record is not None and record.subdomain_policy == "quarantine"
    word, record, _ = await dmarc.fetch_record(lookups, "nodmarc.co.th")
    assert (word, record) == ("none", None)
    asked = [name for name, rdtype in dns_server.queries if rdtype == "TXT"]
    assert asked == ["_dmarc.mail.example.co.th", "_dmarc.example.co.th", "_dmarc.nodmarc.co.th"]


@pytest.fixture
def bundled_list_after() -> Iterator[None]:
    yield
    dmarc.use_public_suffix_list(None)


PSL = """// ===BEGIN ICANN DOMAINS===
uk
co.uk
test
shared.test
// ===END ICANN DOMAINS===
// ===BEGIN PRIVATE DOMAINS===
github.io
// ===END PRIVATE DOMAINS===
"""


def test_a_newer_list_in_the_data_directory_is_used(
    tmp_path: Path, bundled_list_after: None
) -> None:
    path = tmp_path / dmarc.PSL_FILE_NAME
    assert dmarc.use_public_suffix_list(path) == "bundled"  # absent
    path.write_text(PSL)
    assert dmarc.use_public_suffix_list(path) == str(path)
    assert dmarc.organizational_domain("a.b.shared.test") == "b.shared.test"
    assert not dmarc.aligned("b.shared.test", "c.shared.test", "r")
    path.write_text("// truncated download\ncom\n")  # would let every name under .uk align
    assert dmarc.use_public_suffix_list(path) == "bundled"
    assert dmarc.organizational_domain("a.b.shared.test") == "shared.test"


def policy(lookups: ResolverLookups, sample: float = 0.0, **settings: object) -> InboundPolicy:
    config = PolicyConfig(**settings)  # type: ignore[arg-type]
    return InboundPolicy(config, lookups, "mx.example.test", sample=lambda: sample)


async def test_spf_aligned_pass(zone: DnsServer, lookups: ResolverLookups) -> None:
    verdict = await policy(lookups).on_message(
        "192.0.2.10", "h", "a@strict.test", message("strict.test")
    )
    assert verdict.dmarc is not None and verdict.dmarc.result == "pass"
    assert verdict.reject is None and not verdict.junk


async def test_relaxed_alignment_with_subdomain_mail_from(
    zone: DnsServer, lookups: ResolverLookups
) -> None:
    verdict = await policy(lookups).on_message(
        "192.0.2.10", "h", "b@mail.strict.test", message("strict.test")
    )
    assert verdict.dmarc is not None and verdict.dmarc.result == "pass"


async def test_reject_names_the_failed_checks(zone: DnsServer, lookups: ResolverLookups) -> None:
    verdict = await policy(lookups).on_message(
        "203.0.113.1", "h", "a@strict.test", message("strict.test")
    )
    assert verdict.reject is not None
    assert (verdict.reject.code, verdict.reject.enhanced) == (550, "5.7.1")
    assert "DMARC policy of strict.test says reject" in verdict.reject.text
    assert "SPF fail for strict.test" in verdict.reject.text
    assert "no DKIM signature" in verdict.reject.text
    assert b"dmarc=fail policy.dmarc=reject header.from=strict.test" in verdict.prefix


async def test_spf_pass_for_other_domain_is_not_aligned(
    zone: DnsServer, lookups: ResolverLookups
) -> None:
    verdict = await policy(lookups).on_message(
        "192.0.2.10", "h", "a@quarantine.test", message("strict.test")
    )
    assert verdict.spf is not None and verdict.spf.result == "pass"
    assert verdict.reject is not None


async def test_quarantine_marks_junk(zone: DnsServer, lookups: ResolverLookups) -> None:
    verdict = await policy(lookups).on_message(
        "203.0.113.1", "h", "a@quarantine.test", message("quarantine.test")
    )
    assert verdict.reject is None and verdict.junk
    assert verdict.prefix.endswith(b"X-Todoku-Junk: yes\r\n")


async def test_reject_can_be_softened_to_junk(zone: DnsServer, lookups: ResolverLookups) -> None:
    verdict = await policy(lookups, dmarc_reject=False).on_message(
        "203.0.113.1", "h", "a@strict.test", message("strict.test")
    )
    assert verdict.reject is None and verdict.junk


@pytest.mark.parametrize(("sample", "applied"), [(0.1, "reject"), (0.5, "quarantine")])
async def test_pct_sampling(
    zone: DnsServer, lookups: ResolverLookups, sample: float, applied: str
) -> None:
    verdict = await policy(lookups, sample).on_message(
        "203.0.113.1", "h", "a@sampled.test", message("sampled.test")
    )
    assert verdict.dmarc is not None and verdict.dmarc.applied == applied


async def test_strict_spf_alignment(zone: DnsServer, lookups: ResolverLookups) -> None:
    verdict = await policy(lookups).on_message(
        "192.0.2.10", "h", "a@sub.aspf.test", message("aspf.test")
    )
    assert verdict.dmarc is not None and verdict.dmarc.result == "fail"


async def test_subdomain_policy_from_organizational_domain(
    zone: DnsServer, lookups: ResolverLookups
) -> None:
    sub = await policy(lookups).on_message(
        "203.0.113.1", "h", "a@x.parent.test", message("x.parent.test")
    )
    top = await policy(lookups).on_message(
        "203.0.113.1", "h", "a@parent.test", message("parent.test")
    )
    assert sub.dmarc is not None and sub.dmarc.policy == "reject" and sub.reject is not None
    assert top.dmarc is not None and top.dmarc.policy == "none" and top.reject is None


@pytest.mark.parametrize(
    ("domain", "word"),
    [("nopolicy.test", "none"), ("broken.test", "temperror"), ("nothing.test", "none")],
)
async def test_no_usable_policy(
    zone: DnsServer, lookups: ResolverLookups, domain: str, word: str
) -> None:
    verdict = await policy(lookups).on_message("203.0.113.1", "h", f"a@{domain}", message(domain))
    assert verdict.dmarc is not None and verdict.dmarc.result == word
    assert verdict.reject is None and not verdict.junk


def test_forged_results_and_junk_marks_are_removed() -> None:
    forged = (
        b"Authentication-Results: mx.example.test; dmarc=pass\r\n\theader.from=bank.test\r\n"
        b"Authentication-Results: other.test; spf=pass\r\n"
        b"X-Todoku-Junk: no\r\nSubject: x\r\n\r\nAuthentication-Results: mx.example.test; body stays\r\n"
    )
    cleaned = strip_forged_fields(forged, "mx.example.test")
    assert cleaned == (
        b"Authentication-Results: other.test; spf=pass\r\nSubject: x\r\n\r\n"
        b"Authentication-Results: mx.example.test; body stays\r\n"
    )
