"""The queue's vocabulary: recipient states, attempt results, routes. All frozen values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from todoku.dns.resolver import TlsaRecord

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

# Where an attempt stopped before any SMTP exchange.
PHASE_DNS = "dns"
PHASE_ROUTING = "routing"
PHASE_CONNECT = "connect"
PHASE_EXPIRED = "expired"
PHASE_LOOP = "loop"


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    PERMANENT = "permanent"  # bounce now
    TEMPORARY = "temporary"  # retry on the schedule


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result for one recipient of one delivery attempt, as recorded and reported.

    ``code``/``enhanced``/``text`` are the remote server's own reply when there was one; for
    failures before any reply (DNS, connect, timeout) ``code`` is None and ``status`` is our
    RFC 3463 code for the condition.
    """

    recipient: str
    verdict: Verdict
    phase: str
    code: int | None
    enhanced: str
    text: str
    remote_mta: str = ""
    reason: str = ""  # the bounce analyzer's word (todoku.bounce.classify_reply)
    status: str = ""  # RFC 3463 code for the DSN (enhanced, or derived)
    # The next hop announced DSN and got our NOTIFY: success reports are its job now
    # (RFC 3461 §5.2.2.3, no "relayed" report from us).
    dsn_handed_over: bool = False

    @property
    def diagnostic(self) -> str:
        """RFC 3464 §2.3.6 Diagnostic-Code value: "smtp; 550 5.1.1 text" when a reply exists."""
        if self.code is None:
            return ""
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"smtp; {self.code}{enhanced} {' '.join(self.text.splitlines())}".strip()

    def describe(self) -> str:
        where = f" ({self.remote_mta})" if self.remote_mta else ""
        if self.code is not None:
            enhanced = f" {self.enhanced}" if self.enhanced else ""
            return f"{self.phase}{where}: {self.code}{enhanced} {' '.join(self.text.splitlines())}"
        return f"{self.phase}{where}: {self.text}"


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
    failure: Attempt | None = None  # verdict PERMANENT or TEMPORARY, recipient ""
    ttl: float = 0.0  # the shortest TTL of the DNS answers behind ``hops``; 0: do not reuse


def status_for(verdict: Verdict, code: int | None, enhanced: str) -> str:
    """The RFC 3463 status for a DSN: the remote's enhanced code, else one derived from its class."""
    if enhanced:
        return enhanced
    if verdict is Verdict.DELIVERED:
        return "2.0.0"
    if code is not None:
        return f"{str(code)[0]}.0.0"
    return "5.0.0" if verdict is Verdict.PERMANENT else "4.0.0"
