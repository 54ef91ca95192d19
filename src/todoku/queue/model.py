"""The queue's vocabulary: recipient states and routes (results: todoku.outcome). All frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field

from todoku import outcome
from todoku.dns.resolver import TlsaRecord
from todoku.outcome import Outcome

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

# Where an attempt stopped before any SMTP exchange (todoku.outcome has the rest).
PHASE_DNS = outcome.PHASE_DNS
PHASE_ROUTING = outcome.PHASE_ROUTING
PHASE_CONNECT = outcome.CONNECT
PHASE_EXPIRED = outcome.PHASE_EXPIRED
PHASE_LOOP = outcome.PHASE_LOOP


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """What the destination domain asks of TLS on one hop: an MTA-STS policy (RFC 8461), or
    DNSSEC-authenticated TLSA records of the MX host (DANE, RFC 7672; ``queue.dane``).

    ``enforce``: STARTTLS with a certificate valid for the MX host name, or nothing is sent.
    ``testing``: delivered as usual; what enforce would have refused is logged.
    ``dane``: STARTTLS with a certificate chain that matches ``tlsa``, or nothing is sent;
    with ``dane_error`` set (the TLSA lookup failed in a signed zone) the hop is not dialled.
    """

    mode: str  # "enforce" or "testing" (MTA-STS), "dane"
    domain: str  # the policy domain (the recipient domain)
    summary: str  # "MTA-STS policy of example.com (mode enforce, mx: mx1.example.com)"
    listed: bool = True  # the hop's host matches one of the policy's mx patterns (§4.1)
    tlsa: tuple[TlsaRecord, ...] = ()  # mode dane: the usable records (none: TLS, any cert)
    dane_error: str = ""  # mode dane: why the TLSA records could not be had
    # The policy as TLS-RPT reports it (RFC 8460 §4.4 "policy-string"): the MTA-STS policy's
    # lines, or the TLSA records in presentation form; ``mx`` its "mx-host" patterns.
    strings: tuple[str, ...] = ()
    mx: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hop:
    """One address to dial for a domain, in order of preference."""

    host: str  # the MX host name ("" for an address literal)
    ip: str
    preference: int
    tls_policy: TlsPolicy | None = None  # None: opportunistic STARTTLS (RFC 7435)
    # The recipient domain whose MX this is ("": a relay, an address literal): which domain's
    # TLS report a session with it belongs to (queue.tlsrpt). Not part of the hop's identity.
    domain: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Route:
    """Either hops to try in order, or a final answer without dialling."""

    domain: str
    hops: tuple[Hop, ...] = ()
    failure: Outcome | None = None  # verdict PERMANENT or TEMPORARY, recipient ""
    ttl: float = 0.0  # the shortest TTL of the DNS answers behind ``hops``; 0: do not reuse
