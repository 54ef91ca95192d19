"""DANE (RFC 7672) without sockets: TLSA matching on certificates from a trustme CA, and the
routing step that marks hops, with DNS as tables (``dns.mock``)."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from todoku.config.load import ConfigError, config_from_dict
from todoku.dns.mock import MockResolver
from todoku.dns.resolver import DnsStatus, TlsaRecord
from todoku.queue.dane import DANE, Dane, check_chain, matches, peer_certificates, usable
from todoku.queue.model import TlsPolicy
from todoku.queue.routing import route

MX = "mx1.remote.test"


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def spki(certificate: bytes) -> bytes:
    key = x509.load_der_x509_certificate(certificate).public_key()
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def record(usage: int, selector: int, mtype: int, certificate: bytes) -> TlsaRecord:
    content = certificate if selector == 0 else spki(certificate)
    if mtype == 1:
        content = hashlib.sha256(content).digest()
    elif mtype == 2:
        content = hashlib.sha512(content).digest()
    return TlsaRecord(usage, selector, mtype, content)


def chain_of(leaf: trustme.LeafCert) -> list[bytes]:
    return [der(blob.bytes()) for blob in leaf.cert_chain_pems]


@pytest.fixture(scope="module")
def root() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def intermediate(root: trustme.CA) -> trustme.CA:
    return root.create_child_ca()


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_the_leaf_by_each_selector_and_matching_type(
    root: trustme.CA, selector: int, mtype: int
) -> None:
    [leaf] = chain_of(root.issue_cert(MX))
    [other] = chain_of(root.issue_cert(MX))
    assert matches(record(3, selector, mtype, leaf), leaf)
    assert not matches(record(3, selector, mtype, other), leaf)
    assert check_chain([record(3, selector, mtype, leaf)], None, leaf, MX) is None
    refused = check_chain([record(3, selector, mtype, other)], None, leaf, MX)
    assert refused is not None and "matches none of the TLSA records" in refused


def test_dane_ee_checks_neither_name_nor_dates(root: trustme.CA) -> None:
    # RFC 7672 §3.1.1: the key is what counts, not the name or the validity period.
    expired = root.issue_cert(
        "someone.else.test",
        not_before=datetime.datetime(2000, 1, 1),
        not_after=datetime.datetime(2001, 1, 1),
    )
    [leaf] = chain_of(expired)
    assert check_chain([record(3, 1, 1, leaf)], [leaf], leaf, MX) is None


def test_pkix_usages_and_malformed_records_are_unusable(root: trustme.CA) -> None:
    [leaf] = chain_of(root.issue_cert(MX))
    good = record(3, 1, 1, leaf)
    records = [
        record(0, 0, 1, leaf),  # PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3)
        record(1, 1, 1, leaf),  # PKIX-EE: likewise
        TlsaRecord(3, 1, 1, b"\x00" * 20),  # a SHA-256 that is not 32 octets
        TlsaRecord(3, 2, 1, good.data),  # unknown selector
        TlsaRecord(3, 1, 9, good.data),  # unknown matching type
        good,
    ]
    assert usable(records) == (good,)
    # Only PKIX records that match: as if none were usable (TLS needed, not authenticated).
    assert usable(records[:2]) == ()
    assert check_chain((), [leaf], leaf, MX) is None


def test_dane_ta_matches_an_issuer_in_the_chain_and_checks_the_name(
    intermediate: trustme.CA,
) -> None:
    chain = chain_of(intermediate.issue_cert(MX))
    assert len(chain) == 2
    for selector in (0, 1):
        anchor = record(2, selector, 1, chain[1])
        assert check_chain([anchor], chain, chain[0], MX) is None
        assert check_chain([anchor], chain, chain[0], "MX2.remote.test".lower()) is not None
    wildcard = chain_of(intermediate.issue_cert("*.remote.test"))
    assert check_chain([record(2, 1, 1, wildcard[1])], wildcard, wildcard[0], MX) is None
    deeper = check_chain([record(2, 1, 1, wildcard[1])], wildcard, wildcard[0], "a." + MX)
    assert deeper is not None and "not a.mx1.remote.test" in deeper


def test_dane_ta_refuses_a_wrong_name_a_missing_anchor_and_an_unknown_chain(
    root: trustme.CA, intermediate: trustme.CA
) -> None:
    chain = chain_of(intermediate.issue_cert("imposter.test"))
    anchor = record(2, 1, 1, chain[1])
    wrong = check_chain([anchor], chain, chain[0], MX)
    assert wrong is not None and "imposter.test, not mx1.remote.test" in wrong
    stranger = chain_of(trustme.CA().create_child_ca().issue_cert(MX))
    missing = check_chain([anchor], stranger, stranger[0], MX)
    assert missing is not None and "matches the DANE-TA records" in missing
    unknown = check_chain([anchor], None, chain[0], MX)
    assert unknown is not None and "cannot read the certificate chain" in unknown


def test_dane_ta_refuses_a_leaf_the_anchor_did_not_sign(intermediate: trustme.CA) -> None:
    # The server presents the anchor's certificate, but its own came from another CA.
    honest = chain_of(intermediate.issue_cert(MX))
    [forged] = chain_of(trustme.CA().issue_cert(MX))
    refused = check_chain([record(2, 0, 1, honest[1])], [forged, honest[1]], forged, MX)
    assert refused is not None and "is not signed by" in refused


def test_dane_ta_refuses_an_expired_leaf(intermediate: trustme.CA) -> None:
    old = intermediate.issue_cert(
        MX, not_before=datetime.datetime(2000, 1, 1), not_after=datetime.datetime(2001, 1, 1)
    )
    chain = chain_of(old)
    refused = check_chain([record(2, 1, 1, chain[1])], chain, chain[0], MX)
    assert refused is not None and "out of date" in refused


# ------------------------------------------------------------------ routing


def resolver(**secure: bool) -> MockResolver:
    tlsa = TlsaRecord(3, 1, 1, b"\x01" * 32)
    mock = MockResolver(
        mx_records={"remote.test": [(10, MX)]},
        hosts={MX: ["192.0.2.1"]},
        tlsa_records={f"_25._tcp.{MX}": [tlsa]},
    )
    names = {"mx": "remote.test", "address": MX, "tlsa": f"_25._tcp.{MX}"}
    mock.authenticated = {names[k] for k, on in secure.items() if on}
    return mock


async def routed(mock: MockResolver) -> TlsPolicy | None:
    found = await route(mock, "remote.test", is_self=lambda h, i: False, dane=Dane(mock))
    [hop] = found.hops
    return hop.tls_policy


async def test_an_authenticated_chain_of_answers_marks_the_hop_for_dane() -> None:
    policy = await routed(resolver(mx=True, address=True, tlsa=True))
    assert policy is not None and policy.mode == DANE
    assert policy.tlsa == (TlsaRecord(3, 1, 1, b"\x01" * 32),)


@pytest.mark.parametrize(
    "secure",
    [
        {"mx": False, "address": True, "tlsa": True},  # RFC 7672 §2.2.1: insecure MX
        {"mx": True, "address": False, "tlsa": True},  # §2.2.2: insecure address records
        {"mx": True, "address": True, "tlsa": False},  # insecure TLSA
    ],
)
async def test_any_insecure_link_leaves_the_hop_opportunistic(secure: dict[str, bool]) -> None:
    assert await routed(resolver(**secure)) is None


async def test_a_failed_tlsa_lookup_in_a_signed_zone_bars_the_hop() -> None:
    mock = resolver(mx=True, address=True, tlsa=True)
    mock.fail[f"_25._tcp.{MX}"] = DnsStatus.SERVFAIL
    policy = await routed(mock)
    assert policy is not None and "RFC 7672 §2.2" in policy.dane_error
    mock.authenticated.discard(MX)  # the same failure for an insecure host: no DANE at all
    assert await routed(mock) is None


class _LeafOnly:
    """An SSL object from a Python that cannot give the chain (neither method exists)."""

    def __init__(self, leaf: bytes) -> None:
        self.leaf = leaf

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self.leaf


def test_without_a_chain_dane_ta_is_refused_not_skipped(intermediate: trustme.CA) -> None:
    chain = chain_of(intermediate.issue_cert(MX))
    leaf, got = peer_certificates(_LeafOnly(chain[0]))  # type: ignore[arg-type]
    assert leaf == chain[0] and got is None
    refused = check_chain([record(2, 1, 1, chain[1])], got, leaf, MX)
    assert refused is not None and "cannot be checked" in refused


def test_dns_dnssec_setting(tmp_path: Path) -> None:
    base: dict[str, object] = {"domains": ["example.test"], "data_dir": "data"}
    assert config_from_dict(base, tmp_path).dnssec == "off"
    validating = config_from_dict(base | {"dns": {"dnssec": "validating"}}, tmp_path)
    assert validating.dnssec == "validating"
    with pytest.raises(ConfigError, match=r'^dns\.dnssec: must be "off" or "validating"'):
        config_from_dict(base | {"dns": {"dnssec": "yes"}}, tmp_path)
