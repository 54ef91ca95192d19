"""``todoku dns-records`` parsed back into a zone, and ``todoku diagnose --self`` against that zone
served by the loopback DNS server, complete and then with each record missing in turn."""

from __future__ import annotations

from collections.abc import Callable

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer

HOST = "mx.example.test"
IPV4 = "127.0.0.1"  # the server's address in this test world (so SPF "mx" passes for it)


def parse_zone(text: str) -> list[tuple[str, str, str]]:
    """Zone-file lines → (name, type, rdata text); every line must be valid for dnspython."""
    records = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, ttl, klass, rdtype, rdata = line.split("\t", 4)
        assert name.endswith(".") and int(ttl) > 0 and klass == "IN", line
        parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), rdata)
        records.append((name.rstrip("."), rdtype, parsed.to_text()))
    return records


def txt(records: list[tuple[str, str, str]], name: str) -> list[str]:
    out = []
    for record_name, rdtype, rdata in records:
        if record_name == name and rdtype == "TXT":
            parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata)
            out.append(b"".join(parsed.strings).decode())  # type: ignore[attr-defined]
    return out


@pytest.fixture
def configured(make_server: Callable[..., TodokuServer], dns_server: DnsServer) -> TodokuServer:
    extra = f'\n[dns]\nnameservers = ["{dns_server.address}"]\n'
    return make_server(extra=extra, services=("smtp", "submission", "imaps", "pop3s"), start=False)


def test_dns_records_are_complete_and_parse(configured: TodokuServer) -> None:
    out = configured.cli(
        "dns-records", "example.test", "--ipv4", "192.0.2.25", "--ipv6", "2001:db8::25"
    ).stdout
    records = parse_zone(out)
    by_type = {(n, t) for n, t, _ in records}
    assert ("example.test", "MX") in by_type and ("mx.example.test", "A") in by_type
    assert ("mx.example.test", "AAAA") in by_type
    assert txt(records, "example.test") == ["v=spf1 mx -all"]
    assert txt(records, "_dmarc.example.test") == [
        "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"
    ]
    assert txt(records, "_smtp._tls.example.test") == [
        "v=TLSRPTv1; rua=mailto:postmaster@example.test"
    ]
    assert txt(records, "_mta-sts.example.test")[0].startswith("v=STSv1; id=")
    dkim = [(n, t) for n, t in by_type if n.endswith("._domainkey.example.test")]
    assert len(dkim) == 2
    keys = {txt(records, n)[0].split(";")[1].strip() for n, _ in dkim}
    assert keys == {"k=ed25519", "k=rsa"}
    srv = {n for n, t in by_type if t == "SRV"}
    assert {"_submission._tcp.example.test", "_pop3s._tcp.example.test"} <= srv
    assert "_pop3._tcp.example.test" not in srv  # not configured, not advertised
    # IMAP: the configured imaps is published; imap (143) is said to be absent (RFC 6186 §3.4).
    assert ("_imaps._tcp.example.test", "SRV", "0 1 993 mx.example.test.") in records
    assert ("_imap._tcp.example.test", "SRV", "0 0 0 .") in records
    # The PTR is the provider's job: printed, but as a comment, with the reversed address.
    assert "; 25.2.0.192.in-addr.arpa.\t3600\tIN\tPTR\tmx.example.test." in out
    assert "example.org" not in out


def test_dkim_rotate_shows_both_selectors(configured: TodokuServer) -> None:
    before = parse_zone(configured.cli("dns-records", "example.org", "--ipv4", "192.0.2.25").stdout)
    rotated = configured.cli("dkim", "rotate", "example.org").stdout
    assert "publish these records now" in rotated
    after = parse_zone(configured.cli("dns-records", "example.org", "--ipv4", "192.0.2.25").stdout)
    count = lambda rs: sum(1 for n, _, _ in rs if "._domainkey." in n)
    assert (count(before), count(after)) == (2, 4)
    again = configured.cli("dkim", "rotate", "example.org", check=False)
    assert again.returncode == 2 and "already pending" in again.stderr
    bad = configured.cli("dkim", "rotate", "elsewhere.test", check=False)
    assert bad.returncode == 2 and "not a local domain" in bad.stderr


def publish(
    dns_server: DnsServer, records: list[tuple[str, str, str]], skip: tuple[str, str] | None
) -> None:
    for name, rdtype, rdata in records:
        if (name, rdtype) != skip:
            dns_server.add(name, rdtype, rdata)
    dns_server.add("1.0.0.127.in-addr.arpa", "PTR", f"{HOST}.")


def full_zone(configured: TodokuServer) -> list[tuple[str, str, str]]:
    return parse_zone(configured.cli("dns-records", "--ipv4", IPV4).stdout)


def test_diagnose_self_all_published(configured: TodokuServer, dns_server: DnsServer) -> None:
    publish(dns_server, full_zone(configured), None)
    result = configured.cli("diagnose", "--self", check=False)
    assert result.returncode == 0, result.stdout
    assert "All required records are published." in result.stdout
    # "--" marks an optional record not published; the DANE line (diag/dane.py) is not a record
    # and says "--" whenever DANE is off, as it is by default.
    records = [line for line in result.stdout.splitlines() if "DANE (RFC 7672)" not in line]
    assert not [line for line in records if "!!" in line or "--" in line.replace("--self", "")]


@pytest.mark.parametrize(
    ("skip", "words"),
    [
        (("example.test", "MX"), "MX of example.test"),
        (("example.test", "TXT"), "SPF of example.test"),
        (("_dmarc.example.org", "TXT"), "DMARC of example.org"),
        (("mx.example.test", "A"), "Address of mx.example.test"),
        (("dkim", "TXT"), "DKIM key"),
        (("ptr", "PTR"), "Reverse DNS (PTR) of 127.0.0.1"),
    ],
)
def test_diagnose_self_names_each_missing_record(
    configured: TodokuServer, dns_server: DnsServer, skip: tuple[str, str], words: str
) -> None:
    records = full_zone(configured)
    if skip[0] == "dkim":
        skip = next((n, t) for n, t, _ in records if n.endswith("._domainkey.example.test"))
    if skip[0] == "ptr":
        for name, rdtype, rdata in records:
            dns_server.add(name, rdtype, rdata)
    else:
        publish(dns_server, records, skip)
    result = configured.cli("diagnose", "--self", check=False)
    assert result.returncode == 1, result.stdout
    problem = [line for line in result.stdout.splitlines() if line.startswith("  !! ")]
    assert len(problem) >= 1
    assert words in result.stdout
    assert "missing or wrong" in result.stdout


def test_diagnose_self_wrong_dkim_key_and_japanese(
    configured: TodokuServer, dns_server: DnsServer
) -> None:
    records = full_zone(configured)
    name = next(n for n, _, r in records if n.endswith("._domainkey.example.test") and "k=rsa" in r)
    publish(dns_server, records, (name, "TXT"))
    dns_server.add(
        name, "TXT", '"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnotours"'
    )
    result = configured.cli("diagnose", "--self", "--lang", "ja", check=False)
    assert result.returncode == 1
    assert f"[誤り] dkim     {name}" in result.stdout
    assert "DKIM 鍵" in result.stdout
