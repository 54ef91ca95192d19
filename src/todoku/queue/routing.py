"""Where mail for a domain goes: MX lookup, ordering, implicit MX, null MX, self-loops.

RFC 5321 §5.1: MX records are tried in order of preference, records of equal preference in random
order; without MX records the domain's own address records act as one MX of preference 0
(implicit MX). RFC 7505: a single MX with the root name "." means the domain takes no mail.
A name that does not exist (NXDOMAIN) is permanent; a server failure or timeout is temporary.

A ``[[relay]]`` (config.relay) replaces all of this for the domains it matches: ``choose`` says
which way a recipient domain goes and why (shown by ``todoku queue show``), and ``relay_route``
turns the relay's host into hops. Whatever goes wrong in finding the relay is temporary: it is
our configuration or our network, never a reason to bounce the sender's mail.

MTA-STS (RFC 8461, ``queue.mtasts``) narrows a domain's route after the MX lookup: in
``enforce`` mode only the MX hosts the policy lists stay, each marked to need TLS with a
certificate valid for its name (the transport sends nothing otherwise); no listed host left
means a temporary failure that says why. ``testing`` marks every hop so the transport logs
what enforce would have refused, and delivers anyway; ``none`` changes nothing.

DANE (RFC 7672, ``queue.dane``) comes first: with a validating resolver, MX hosts whose MX and
address answers are DNSSEC-authenticated get their TLSA records looked up, and a hop with
authenticated TLSA records is marked to need TLS that matches them. DANE takes precedence over
MTA-STS (RFC 8461 §2): such hops keep their DANE mark whatever the MTA-STS policy says, and
the policy decides only the other hops.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from todoku.config.relay import RelayConfig
from todoku.dns.resolver import DnsStatus, Resolver
from todoku.outcome import PHASE_DNS, PHASE_ROUTING, Outcome, Verdict
from todoku.queue.dane import Dane, is_dane
from todoku.queue.model import Hop, Route, TlsPolicy
from todoku.queue.mtasts import ENFORCE, TESTING, MtaSts, PolicyLookup
from todoku.queue.tlsrpt import VALIDATION_FAILURE

log = logging.getLogger("todoku.delivery")

Shuffle = Callable[[list[Hop]], None]


def _failure(domain: str, verdict: Verdict, status: str, text: str, reason: str) -> Route:
    return Route(
        domain,
        failure=Outcome(
            "",
            verdict,
            PHASE_DNS if status != "5.4.6" else PHASE_ROUTING,
            None,
            "",
            text,
            "",
            reason,
            status,
        ),
    )


def _literal(domain: str) -> str | None:
    """The IP of an address literal "[192.0.2.1]" / "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3)."""
    if not domain.startswith("["):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


def _order(records: list[tuple[int, str]], shuffle: Shuffle) -> list[tuple[int, str]]:
    """Sort by preference; RFC 5321 §5.1: equal preferences in random order."""
    by_pref: dict[int, list[Hop]] = {}
    for pref, host in records:
        by_pref.setdefault(pref, []).append(Hop(host, "", pref))
    ordered = []
    for pref in sorted(by_pref):
        group = by_pref[pref]
        shuffle(group)
        ordered += [(h.preference, h.host) for h in group]
    return ordered


async def route(
    resolver: Resolver,
    domain: str,
    *,
    is_self: Callable[[str, str], bool],
    shuffle: Shuffle = random.shuffle,
    mta_sts: MtaSts | None = None,
    dane: Dane | None = None,
) -> Route:
    """Resolve ``domain`` to hops. ``is_self(host, ip)`` says whether a hop is this server;
    ``dane`` (None: off) marks hops with authenticated TLSA records; ``mta_sts`` (None: off)
    applies the domain's MTA-STS policy to the others."""
    secure: set[str] = set()
    found = await _mx_route(resolver, domain, is_self=is_self, shuffle=shuffle, secure=secure)
    if found.failure is not None or _literal(domain) is not None:
        return found
    if dane is not None:
        found = await dane.apply(found, secure)
    if mta_sts is None:
        return found
    # RFC 8461 §2: where DANE TLSA records apply, DANE takes precedence over MTA-STS.
    protected = [h for h in found.hops if is_dane(h)]
    if not protected:
        lookup = await mta_sts.lookup(domain)
        narrowed = with_mta_sts(found, lookup)
        if narrowed.failure is not None and lookup.policy and mta_sts.on_problem is not None:
            # TLS-RPT (RFC 8460 §4.3.1: "validation-failure"): the policy refused every MX.
            why = "no MX host matches the policy's mx patterns"
            mta_sts.on_problem(lookup.policy.domain, VALIDATION_FAILURE, why, lookup.policy)
        return narrowed
    others = [h for h in found.hops if not is_dane(h)]
    if not others:
        return found
    narrowed = with_mta_sts(replace(found, hops=tuple(others)), await mta_sts.lookup(domain))
    kept = {(h.host, h.ip): h for h in narrowed.hops}
    hops = tuple(
        h if is_dane(h) else kept[(h.host, h.ip)]
        for h in found.hops
        if is_dane(h) or (h.host, h.ip) in kept
    )
    return replace(found, hops=hops)


def with_mta_sts(route: Route, lookup: PolicyLookup) -> Route:
    """The hops ``route`` keeps under the policy ``lookup`` found (RFC 8461 §4, §5)."""
    cached = lookup.policy
    if cached is None or cached.policy.mode not in (ENFORCE, TESTING):
        return route  # no policy, or mode none (RFC 8461 §5): as without MTA-STS
    policy = cached.policy
    summary = cached.describe()
    strings, mx = cached.policy_strings(), policy.mx
    if policy.mode == TESTING:
        # RFC 8461 §5: testing delivers as if there were no policy; the transport logs failures.
        return replace(
            route,
            hops=tuple(
                replace(
                    h,
                    tls_policy=TlsPolicy(
                        TESTING,
                        cached.domain,
                        summary,
                        policy.matches(h.host),
                        strings=strings,
                        mx=mx,
                    ),
                )
                for h in route.hops
            ),
        )
    listed = [h for h in route.hops if policy.matches(h.host)]
    refused = sorted({h.host for h in route.hops if not policy.matches(h.host)})
    if refused:
        log.info(
            "%s: MX host(s) %s not allowed by the %s; not used",
            route.domain,
            ", ".join(refused),
            summary,
        )
    if not listed:
        # RFC 8461 §5 (enforce): MUST NOT deliver to an MX host the policy does not list.
        # Temporary: the policy or the MX records may be corrected before the mail expires.
        text = (
            f"the destination publishes an MTA-STS policy (RFC 8461) in enforce mode: "
            f"{summary}; none of its MX hosts ({', '.join(refused)}) is allowed by it, so "
            f"nothing was sent. The recipient domain's administrators must make the policy "
            f"and the MX records agree"
        )
        return Route(
            route.domain,
            failure=Outcome(
                "", Verdict.TEMPORARY, PHASE_ROUTING, None, "", text, "", "failedstarttls", "4.7.5"
            ),
        )
    enforce = TlsPolicy(ENFORCE, cached.domain, summary, strings=strings, mx=mx)
    return replace(route, hops=tuple(replace(h, tls_policy=enforce) for h in listed))


async def _mx_route(
    resolver: Resolver,
    domain: str,
    *,
    is_self: Callable[[str, str], bool],
    shuffle: Shuffle,
    secure: set[str] | None = None,
) -> Route:
    """``secure`` (when given) receives the MX hosts whose MX answer (or its authenticated
    absence: implicit MX) and address answers are all DNSSEC-authenticated (RFC 7672 §2.2.1,
    §2.2.2): the hosts DANE may look up TLSA records for."""
    literal = _literal(domain)
    if literal is not None:
        if is_self("", literal):
            return _loop(domain, literal)
        return Route(domain, hops=(Hop("", literal, 0),))
    answer = await resolver.mx(domain)
    if answer.status is DnsStatus.NXDOMAIN:
        return _failure(
            domain,
            Verdict.PERMANENT,
            "5.1.2",
            f"Host or domain name not found. Name service error for name={domain} type=MX: "
            "Host not found",
            "hostunknown",
        )
    if answer.status.is_temporary:
        return _failure(
            domain,
            Verdict.TEMPORARY,
            "4.4.3",
            f"Host or domain name not found. Name service error for name={domain} type=MX: "
            f"Host not found, try again ({answer.status.value})",
            "networkerror",
        )
    records = [(r.preference, r.host) for r in answer.records]
    if any(host == "" for _, host in records):
        # RFC 7505 §4.1: a null MX means the domain accepts no mail; fail without retrying.
        return _failure(
            domain,
            Verdict.PERMANENT,
            "5.1.10",
            f"Domain {domain} does not accept mail (null MX)",
            "notaccept",
        )
    if not records:
        records = [(0, domain)]  # RFC 5321 §5.1: implicit MX
    ordered = _order(records, shuffle)
    hops: list[Hop] = []
    ttl = answer.ttl if answer.ok else 0.0  # an implicit MX (NODATA) is not reused
    temporary = ""
    for pref, host in ordered:
        if is_self(host, ""):
            # RFC 5321 §5.1: drop ourselves and every less preferred host.
            if not hops:
                return _loop(domain, host)
            break
        addresses = await resolver.addresses(host)
        ttl = min(ttl, addresses.ttl)
        if secure is not None and answer.authenticated and addresses.authenticated:
            secure.add(host)
        if addresses.status.is_temporary:
            temporary = addresses.detail
            continue
        self_hit = False
        for ip in addresses.records:
            if is_self(host, ip):
                self_hit = True
                continue
            hops.append(Hop(host, ip, pref, domain=domain.lower().rstrip(".")))
        if self_hit and not hops:
            return _loop(domain, host)
        if self_hit:
            break
    if hops:
        return Route(domain, hops=tuple(hops), ttl=ttl)
    if temporary:
        return _failure(
            domain,
            Verdict.TEMPORARY,
            "4.4.3",
            f"Host or domain name not found: {temporary}",
            "networkerror",
        )
    if records == [(0, domain)]:
        return _failure(
            domain,
            Verdict.PERMANENT,
            "5.1.2",
            f"Host or domain name not found. Name service error for name={domain} type=A: "
            "Host not found",
            "hostunknown",
        )
    return _failure(
        domain,
        Verdict.PERMANENT,
        "5.4.4",
        f"No address for any mail exchanger of {domain} ({', '.join(h for _, h in ordered)})",
        "hostunknown",
    )


def _loop(domain: str, host: str) -> Route:
    # RFC 5321 §5.1: delivering to ourselves would loop; the MX data or our domain list is wrong.
    return _failure(
        domain,
        Verdict.PERMANENT,
        "5.4.6",
        f"Local configuration error: mail for {domain} loops back to myself (the MX host "
        f"{host} is this server, but {domain} is not one of its domains)",
        "networkerror",
    )


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """Which way mail for one domain goes now: ``relay`` (None: the domain's MX) and why."""

    domain: str
    relay: RelayConfig | None
    why: str

    @property
    def describe(self) -> str:
        return f"{self.domain}: {self.why}"


def choose(relays: Sequence[RelayConfig], domain: str, failed_attempts: int) -> RouteChoice:
    """The first ``[[relay]]`` whose ``domains`` match decides; ``fallback_after = N`` sends the
    message direct until it has N failed attempts behind it."""
    domain = domain.lower().rstrip(".")
    for relay in relays:
        pattern = relay.matching_pattern(domain)
        if pattern is None:
            continue
        matched = f'{relay.key} matches "{pattern}"'
        if failed_attempts < relay.fallback_after:
            return RouteChoice(
                domain,
                None,
                f"MX (direct first: {matched} with fallback_after = {relay.fallback_after}; "
                f"{failed_attempts} failed attempt(s) so far)",
            )
        after = f" after {failed_attempts} failed direct attempt(s)" if relay.fallback_after else ""
        return RouteChoice(domain, relay, f"relay {relay.address} ({matched}{after})")
    reason = "no [[relay]] matches" if relays else "no [[relay]] configured"
    return RouteChoice(domain, None, f"MX ({reason})")


async def relay_route(resolver: Resolver, relay: RelayConfig) -> Route:
    """The smarthost's addresses as hops (no MX lookup: ``host`` names the server itself)."""
    try:
        return Route(relay.key, hops=(Hop(relay.host, str(ipaddress.ip_address(relay.host)), 0),))
    except ValueError:
        pass
    answer = await resolver.addresses(relay.host)
    if answer.records:
        hops = tuple(Hop(relay.host, ip, 0) for ip in answer.records)
        return Route(relay.key, hops=hops, ttl=answer.ttl)
    detail = answer.detail or answer.status.value
    return Route(
        relay.key,
        failure=Outcome(
            "",
            Verdict.TEMPORARY,
            PHASE_DNS,
            None,
            "",
            f"the relay host {relay.host} ({relay.key}.host) has no address now ({detail})",
            "",
            "networkerror",
            "4.4.3",
        ),
    )
