"""DANE for SMTP (RFC 7672): MX hosts whose DNSSEC-signed TLSA records say which certificate to
expect, so mail to them goes only over TLS that matches.

Only with ``[dns] dnssec = "validating"`` (the resolver is declared to validate, so its AD bit is
trusted; ``dns.dnspython``) does the queue ask for TLSA records at all. Then, for a domain whose
MX answer is authenticated, each MX host whose address records are authenticated too gets its
``_25._tcp.<host>`` TLSA RRset looked up (RFC 7672 §2.2, §2.2.2):

- authenticated records → ``TlsPolicy("dane", tlsa=usable records)``: the transport needs
  STARTTLS and a chain that matches (``check_chain``); no match, no STARTTLS → temporary failure
  (4.7.5), nothing sent in clear (§2.2). A secure RRset without usable records still needs TLS
  (§3.1.3: "mandatory unauthenticated TLS"), checked by no certificate.
- an insecure answer, NODATA or NXDOMAIN → no DANE for that host (opportunistic TLS, or MTA-STS).
- a failed lookup (SERVFAIL, timeout) for a host in a signed zone → the hop is not used (§2.2:
  the failure may be an attacker hiding the records), a temporary failure that says so.

Matching (RFC 7672 §3.1, RFC 6698 §2.1): usages DANE-TA(2) and DANE-EE(3) only — PKIX-TA(0) and
PKIX-EE(1) are unusable for SMTP (§3.1.3); selectors 0 (full certificate) and 1 (SPKI); matching
types 0 (exact), 1 (SHA-256), 2 (SHA-512). DANE-EE matches the leaf alone: no name, no expiry
(§3.1.1). DANE-TA matches a certificate the server presents; the leaf must chain up to it by
signature, be in date, and carry the MX host name (§3.1.2, §3.2.3).

Invariants: nothing here trusts an AD bit itself (``Answer.authenticated`` is False unless the
resolver is declared validating); every refusal is a sentence naming the host and the records.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import ssl
from collections.abc import Callable, Sequence
from dataclasses import replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from todoku.dns.resolver import Answer, DnsStatus, TlsaRecord, TlsaResolver
from todoku.queue.model import Hop, Route, TlsPolicy

DANE = "dane"

PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MATCH_EXACT, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2
_DIGEST_SIZE = {MATCH_SHA256: 32, MATCH_SHA512: 64}
MAX_SHOWN = 3  # TLSA records quoted in an explanation


def tlsa_name(host: str, port: int = 25) -> str:
    """RFC 7672 §2.2.3 / RFC 6698 §3: the TLSA owner name of an MX host."""
    return f"_{port}._tcp.{host}"


def usable(records: Sequence[TlsaRecord]) -> tuple[TlsaRecord, ...]:
    """The records SMTP can use: DANE-TA/DANE-EE with a known selector and matching type
    (RFC 7672 §3.1.3: PKIX-TA and PKIX-EE are unusable for SMTP; RFC 6698 §4.1: unknown
    parameters are unusable), digests of the right length (RFC 7671 §10)."""
    return tuple(
        r
        for r in records
        if r.usage in (DANE_TA, DANE_EE)
        and r.selector in (SELECTOR_CERT, SELECTOR_SPKI)
        and r.mtype in (MATCH_EXACT, MATCH_SHA256, MATCH_SHA512)
        and len(r.data) == _DIGEST_SIZE.get(r.mtype, len(r.data))
        and r.data
    )


def _selected(certificate: x509.Certificate, der: bytes, selector: int) -> bytes:
    if selector == SELECTOR_CERT:
        return der
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def matches(record: TlsaRecord, der: bytes) -> bool:
    """Does the certificate ``der`` (DER) match ``record``'s selector, matching type and data?"""
    try:
        certificate = x509.load_der_x509_certificate(der)
        content = _selected(certificate, der, record.selector)
    except ValueError:
        return False
    if record.mtype == MATCH_SHA256:
        content = hashlib.sha256(content).digest()
    elif record.mtype == MATCH_SHA512:
        content = hashlib.sha512(content).digest()
    elif record.mtype != MATCH_EXACT:
        return False
    return content == record.data


def _name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4.3 as RFC 7672 §3.2.3 allows it: exact, or "*" as the whole leftmost label."""
    pattern = pattern.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    head, _, rest = host.partition(".")
    return bool(head) and rest == pattern[2:] and "." in rest


def _names(certificate: x509.Certificate) -> list[str]:
    """DNS subjectAltNames; the subject CN only when there are none (RFC 7672 §3.2.3)."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = extension.value.get_values_for_type(x509.DNSName)
        if names:
            return names
    except x509.ExtensionNotFound:
        pass
    return [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    ]


def _describe(records: Sequence[TlsaRecord]) -> str:
    shown = [str(r) for r in records[:MAX_SHOWN]]
    more = f" and {len(records) - MAX_SHOWN} more" if len(records) > MAX_SHOWN else ""
    return ", ".join(shown) + more


def check_chain(
    records: Sequence[TlsaRecord],
    chain: Sequence[bytes] | None,
    leaf: bytes | None,
    host: str,
    now: datetime.datetime | None = None,
) -> str | None:
    """None when the server's certificates satisfy ``records`` (already ``usable``), else why
    not. ``leaf`` is the server's certificate (DER), ``chain`` all it presented, leaf first
    (None: this Python cannot tell, so DANE-TA cannot be checked)."""
    if not records:
        return None  # RFC 7672 §3.1.3: no usable records, TLS required but not authenticated
    if leaf is None:
        return "the server presented no certificate"
    if any(r.usage == DANE_EE and matches(r, leaf) for r in records):
        return None  # RFC 7672 §3.1.1: DANE-EE(3): no name check, no validity dates
    trust_anchors = [r for r in records if r.usage == DANE_TA]
    if not trust_anchors:
        return f"its certificate matches none of the TLSA records ({_describe(records)})"
    if chain is None:
        return (
            "its certificate matches no DANE-EE record, and this Python cannot read the "
            "certificate chain the server sent, so the DANE-TA records cannot be checked"
        )
    return _check_trust_anchor(trust_anchors, list(chain) or [leaf], host, now)


def _check_trust_anchor(
    records: Sequence[TlsaRecord],
    chain: list[bytes],
    host: str,
    now: datetime.datetime | None,
) -> str | None:
    """RFC 7672 §3.1.2: a DANE-TA(2) record names a trust anchor the server's chain must
    contain; the certificates from the leaf up to it are checked as in PKIX."""
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return f"its certificate chain cannot be read ({exc})"
    anchor = next((i for i, der in enumerate(chain) if any(matches(r, der) for r in records)), None)
    if anchor is None:
        return (
            f"no certificate in the chain it presented ({len(chain)}) matches the DANE-TA "
            f"records ({_describe(records)})"
        )
    now = now or datetime.datetime.now(datetime.UTC)
    for lower, upper in itertools.pairwise(certificates[: anchor + 1]):
        try:
            lower.verify_directly_issued_by(upper)
        except (InvalidSignature, ValueError, TypeError) as exc:
            return (
                f"its certificate {lower.subject.rfc4514_string()} is not signed by "
                f"{upper.subject.rfc4514_string()} ({type(exc).__name__})"
            )
        if not lower.not_valid_before_utc <= now <= lower.not_valid_after_utc:
            return f"its certificate {lower.subject.rfc4514_string()} is out of date"
    names = _names(certificates[0])
    # RFC 7672 §3.2.2: with DANE-TA the reference identifier is the MX host name.
    if not any(_name_matches(name, host) for name in names):
        return (
            f"its certificate chains to a DANE-TA trust anchor but is for "
            f"{', '.join(names) or 'no name'}, not {host}"
        )
    return None


# ------------------------------------------------------------------ reading the chain


def peer_certificates(ssl_object: ssl.SSLObject) -> tuple[bytes | None, list[bytes] | None]:
    """The server's leaf certificate and the whole chain it sent (DER, leaf first).

    Python 3.13 has ``SSLObject.get_unverified_chain()``. Python 3.10 to 3.12 have the same
    method only on the private ``_ssl._SSLSocket`` behind ``SSLObject._sslobj``, returning
    ``_ssl.Certificate`` objects; it is used when present. Without either the chain is None, and
    ``check_chain`` refuses DANE-TA rather than deliver unverified (DANE-EE needs only the leaf).
    """
    leaf = ssl_object.getpeercert(binary_form=True)
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        return leaf, None
    try:
        chain = getter() or []
        ders = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError, ssl.SSLError):
        return leaf, None
    return leaf, ders


def peer_check(policy: TlsPolicy, host: str) -> Callable[[ssl.SSLObject], str | None]:
    """What the SMTP client calls once TLS is up: None to go on, else why it must stop."""

    def check(ssl_object: ssl.SSLObject) -> str | None:
        leaf, chain = peer_certificates(ssl_object)
        return check_chain(policy.tlsa, chain, leaf, host)

    return check


# ------------------------------------------------------------------ routing


def _dane_policy(domain: str, host: str, answer: Answer[TlsaRecord]) -> TlsPolicy | None:
    name = tlsa_name(host)
    if answer.status.is_temporary:
        # RFC 7672 §2.2: a failed TLSA lookup for a host in a signed zone may hide the records;
        # the host MUST NOT be used (it would mean delivering without the check).
        error = (
            f"the TLSA lookup for {name} failed ({answer.detail or answer.status.value}); "
            f"{host} is in a DNSSEC-signed zone, so RFC 7672 §2.2 forbids delivering to it "
            f"without knowing its TLSA records"
        )
        return TlsPolicy(
            DANE, domain, f"DANE for {host} (TLSA lookup failed)", dane_error=error, mx=(host,)
        )
    if answer.status is not DnsStatus.OK or not answer.authenticated:
        return None  # no TLSA records, or not DNSSEC-authenticated: no DANE (§2.2)
    records = usable(answer.records)
    shown = _describe(records) if records else "none usable: TLS required, any certificate"
    summary = f"DANE TLSA records of {name} ({shown})"
    strings = tuple(str(r) for r in answer.records)  # RFC 8460 §4.4: the records as published
    return TlsPolicy(DANE, domain, summary, tlsa=records, strings=strings, mx=(host,))


class Dane:
    """Looks up the TLSA records of a route's secure MX hosts and marks their hops."""

    def __init__(self, resolver: TlsaResolver) -> None:
        self.resolver = resolver

    async def apply(self, route: Route, secure_hosts: set[str]) -> Route:
        """``secure_hosts``: MX hosts whose MX and address answers were authenticated (RFC 7672
        §2.2.1, §2.2.2); only those get TLSA lookups."""
        policies: dict[str, TlsPolicy | None] = {}
        ttl = route.ttl
        for hop in route.hops:
            if hop.host in policies or hop.host not in secure_hosts:
                continue
            answer = await self.resolver.tlsa(tlsa_name(hop.host))
            policies[hop.host] = _dane_policy(route.domain, hop.host, answer)
            if answer.ok:
                ttl = min(ttl, answer.ttl)
        if not any(policies.values()):
            return route
        hops = tuple(
            replace(hop, tls_policy=policies[hop.host]) if policies.get(hop.host) else hop
            for hop in route.hops
        )
        return replace(route, hops=hops, ttl=ttl)


def is_dane(hop: Hop) -> bool:
    return hop.tls_policy is not None and hop.tls_policy.mode == DANE
