"""SPF (RFC 7208): is the client IP allowed to send mail for the MAIL FROM (or HELO) domain?

Our own evaluator over ``lookup.Lookups``. It implements ``check_host()`` (RFC 7208 §4) with the
mechanisms all, include, a, mx, ptr, ip4, ip6, exists, the redirect modifier, macros (§7) and the
processing limits of §4.6.4: at most 10 terms that cause DNS queries, at most 10 MX or PTR names
looked up per mechanism, at most 2 "void" lookups (no answer). ``exp=`` is parsed but not
fetched: our reject texts say which check failed instead of quoting the sender's explanation.

``ptr`` is evaluated as "never matches" but still counted as a lookup: RFC 7208 §5.5 says it
SHOULD NOT be published, and doing it properly costs many queries per message for nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from todoku.mailauth.lookup import Lookups

PASS = "pass"
FAIL = "fail"
SOFTFAIL = "softfail"
NEUTRAL = "neutral"
NONE = "none"
TEMPERROR = "temperror"
PERMERROR = "permerror"

_QUALIFIERS = {"+": PASS, "-": FAIL, "~": SOFTFAIL, "?": NEUTRAL}
MAX_DNS_MECHANISMS = 10  # RFC 7208 §4.6.4
MAX_VOID_LOOKUPS = 2  # RFC 7208 §4.6.4
MAX_NAMES_PER_MECHANISM = 10  # RFC 7208 §4.6.4 (MX and PTR)
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_DNS_MECHANISMS = ("include", "a", "mx", "ptr", "exists")


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str  # one of PASS ... PERMERROR
    domain: str  # the domain whose policy was checked
    identity: str  # "mailfrom" or "helo" (RFC 8601 §2.7.2: smtp.mailfrom / smtp.helo)
    detail: str = ""  # which mechanism matched, or what went wrong


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


@dataclass
class _State:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    lookups: Lookups
    dns_terms: int = 0
    void: int = 0
    trail: list[str] = field(default_factory=list)

    def count_dns(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_MECHANISMS:
            # RFC 7208 §4.6.4: more than 10 → permerror
            raise _PermError("more than 10 DNS-querying terms")

    def count_void(self) -> None:
        self.void += 1
        if self.void > MAX_VOID_LOOKUPS:
            raise _PermError("more than 2 lookups without an answer")


def _valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels) and len(domain) <= 253


# ----------------------------------------------------------------- macros (RFC 7208 §7)

_MACRO = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|(.))")


def expand(spec: str, state: _State, domain: str) -> str:
    local, _, sender_domain = state.sender.rpartition("@")
    ip = state.ip
    if ip.version == 4:
        dotted_ip = str(ip)
    else:
        dotted_ip = ".".join(ip.exploded.replace(":", ""))
    values = {
        "s": state.sender,
        "l": local or "postmaster",
        "o": sender_domain,
        "d": domain,
        "i": dotted_ip,
        "p": "unknown",  # RFC 7208 §7.3: no validated name without doing PTR work
        "v": "in-addr" if ip.version == 4 else "ip6",
        "h": state.helo,
    }

    def replace(match: re.Match[str]) -> str:
        if match.group(5) is not None:
            escape = match.group(5)
            if escape == "%":
                return "%"
            if escape == "_":
                return " "
            if escape == "-":
                return "%20"
            raise _PermError(f"bad macro %{escape}")
        letter = match.group(1).lower()
        if letter not in values:
            raise _PermError(f"macro %{{{letter}}} only allowed in exp")
        value = values[letter]
        delimiters = match.group(4) or "."
        parts = re.split("[" + re.escape(delimiters) + "]", value)
        if match.group(3):
            parts.reverse()
        if match.group(2):
            keep = int(match.group(2))
            if keep == 0:
                raise _PermError("macro digit 0")
            parts = parts[-keep:]
        return ".".join(parts)

    if "%" not in spec:
        return spec
    # Validate: every % must begin a macro.
    out = _MACRO.sub(replace, spec)
    return out


# ----------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class _Term:
    qualifier: str
    name: str
    argument: str  # domain-spec, network, or "" ; with any /cidr parts kept apart below
    cidr4: int | None
    cidr6: int | None


_CIDR = re.compile(r"^(.*?)(?:/(\d+))?(?://(\d+))?$")


def _split_cidr(text: str) -> tuple[str, int | None, int | None]:
    match = _CIDR.match(text)
    assert match is not None
    base, four, six = match.group(1), match.group(2), match.group(3)
    cidr4 = int(four) if four is not None else None
    cidr6 = int(six) if six is not None else None
    if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
        raise _PermError(f"bad prefix length in {text!r}")
    return base, cidr4, cidr6


def parse_record(text: str) -> tuple[list[_Term], dict[str, str]]:
    """Terms and modifiers of one ``v=spf1`` record; raises _PermError on a syntax error (§4.6)."""
    words = text.split()
    terms: list[_Term] = []
    modifiers: dict[str, str] = {}
    for word in words[1:]:
        name_match = re.match(r"^([a-zA-Z][a-zA-Z0-9\-_.]*)=(.*)$", word)
        if name_match:
            name = name_match.group(1).lower()
            if name in modifiers and name in ("redirect", "exp"):
                raise _PermError(f"{name}= appears twice")  # RFC 7208 §6
            modifiers[name] = name_match.group(2)
            continue
        qualifier = "+"
        if word[0] in _QUALIFIERS:
            qualifier, word = word[0], word[1:]
        name, sep, argument = word.partition(":")
        if not sep:
            name, sep2, rest = word.partition("/")
            argument = sep2 + rest
        name = name.lower()
        if name not in _MECHANISMS:
            raise _PermError(f"unknown mechanism {word!r}")
        cidr4 = cidr6 = None
        if name in ("a", "mx"):
            argument, cidr4, cidr6 = _split_cidr(argument)
            argument = argument.lstrip("/") if argument.startswith("/") else argument
        elif name in ("include", "exists") and not argument:
            raise _PermError(f"{name} needs a domain")
        elif name in ("ip4", "ip6") and not argument:
            raise _PermError(f"{name} needs a network")
        elif name == "all" and argument:
            raise _PermError("all takes no argument")
        terms.append(_Term(qualifier, name, argument, cidr4, cidr6))
    return terms, modifiers


# ----------------------------------------------------------------- evaluation


def _in_network(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    address: str,
    cidr4: int | None,
    cidr6: int | None,
) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    prefix = (
        (cidr4 if cidr4 is not None else 32)
        if ip.version == 4
        else (cidr6 if cidr6 is not None else 128)
    )
    network = ipaddress.ip_network(f"{candidate}/{prefix}", strict=False)
    return ip in network


async def _addresses(state: _State, name: str, *, void_counts: bool = True) -> list[str]:
    answer = await (state.lookups.ipv4(name) if state.ip.version == 4 else state.lookups.ipv6(name))
    if answer.status.is_temporary:
        raise _TempError(answer.detail or f"{name}: DNS failure")
    if not answer.records and void_counts:
        state.count_void()
    return list(answer.records)


async def _fetch_policy(state: _State, domain: str) -> str | None:
    answer = await state.lookups.txt(domain)
    if answer.status.is_temporary:
        raise _TempError(answer.detail or f"{domain}: DNS failure")
    records = [
        r for r in answer.records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")
    ]
    if len(records) > 1:
        raise _PermError(f"{domain} publishes {len(records)} SPF records")  # RFC 7208 §4.5
    return records[0] if records else None


async def _match(state: _State, term: _Term, domain: str, depth: int) -> bool:
    ip = state.ip
    if term.name == "all":
        return True
    if term.name == "ip4":
        if ip.version != 4:
            return False
        try:
            return ip in ipaddress.IPv4Network(term.argument, strict=False)
        except ValueError:
            raise _PermError(f"bad ip4 network {term.argument!r}") from None
    if term.name == "ip6":
        if ip.version != 6:
            return False
        try:
            return ip in ipaddress.IPv6Network(term.argument, strict=False)
        except ValueError:
            raise _PermError(f"bad ip6 network {term.argument!r}") from None
    state.count_dns()
    target = expand(term.argument, state, domain) if term.argument else domain
    target = target.rstrip(".").lower()
    if term.name == "a":
        return any(
            _in_network(ip, a, term.cidr4, term.cidr6) for a in await _addresses(state, target)
        )
    if term.name == "mx":
        answer = await state.lookups.mx(target)
        if answer.status.is_temporary:
            raise _TempError(answer.detail or f"{target}: DNS failure")
        if not answer.records:
            state.count_void()
        hosts = [r.host for r in answer.records if r.host]
        if len(hosts) > MAX_NAMES_PER_MECHANISM:
            raise _PermError(f"{target} has more than 10 MX hosts")  # RFC 7208 §4.6.4
        for host in hosts:
            if any(
                _in_network(ip, a, term.cidr4, term.cidr6)
                for a in await _addresses(state, host, void_counts=False)
            ):
                return True
        return False
    if term.name == "ptr":
        return False  # see the module docstring
    if term.name == "exists":
        found = await state.lookups.ipv4(target)  # RFC 7208 §5.7: always an A query
        if found.status.is_temporary:
            raise _TempError(found.detail or f"{target}: DNS failure")
        if not found.records:
            state.count_void()
        return bool(found.records)
    if term.name == "include":
        result = await _check(state, target, depth + 1)
        # RFC 7208 §5.2: the include table
        if result == PASS:
            return True
        if result in (FAIL, SOFTFAIL, NEUTRAL):
            return False
        if result == TEMPERROR:
            raise _TempError(f"include:{target}: temporary DNS error")
        raise _PermError(f"include:{target} gave {result}")
    raise _PermError(f"unknown mechanism {term.name}")


async def _check(state: _State, domain: str, depth: int) -> str:
    if depth > 20:
        raise _PermError("include/redirect loop")
    if not _valid_domain(domain):
        return NONE  # RFC 7208 §4.3
    record = await _fetch_policy(state, domain)
    if record is None:
        return NONE  # RFC 7208 §4.5
    terms, modifiers = parse_record(record)
    for term in terms:
        if await _match(state, term, domain, depth):
            state.trail.append(
                f"{term.qualifier}{term.name}{':' + term.argument if term.argument else ''} at {domain}"
            )
            return _QUALIFIERS[term.qualifier]
    if "redirect" in modifiers:
        state.count_dns()
        target = expand(modifiers["redirect"], state, domain).rstrip(".").lower()
        result = await _check(state, target, depth + 1)
        if result == NONE:
            raise _PermError(f"redirect={target} has no SPF record")  # RFC 7208 §6.1
        return result
    return NEUTRAL  # RFC 7208 §4.7: no match, no redirect


async def check_host(lookups: Lookups, ip: str, domain: str, sender: str, helo: str = "") -> str:
    """RFC 7208 §4: the result word for ``ip`` sending as ``sender`` on behalf of ``domain``."""
    result, _ = await _check_host(lookups, ip, domain, sender, helo)
    return result


async def _check_host(
    lookups: Lookups, ip: str, domain: str, sender: str, helo: str
) -> tuple[str, str]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return PERMERROR, f"not an IP address: {ip!r}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    state = _State(ip=address, sender=sender, helo=helo, lookups=lookups)
    try:
        result = await _check(state, domain.lower().rstrip("."), 0)
    except _TempError as exc:
        return TEMPERROR, str(exc)
    except _PermError as exc:
        return PERMERROR, str(exc)
    return result, state.trail[0] if state.trail else ""


async def check_mail_from(lookups: Lookups, ip: str, mail_from: str, helo: str) -> SpfResult:
    """The check an MX runs at MAIL FROM (RFC 7208 §2.4): the MAIL FROM domain, or for the null
    reverse-path (bounces) the HELO name, as ``postmaster@helo``."""
    if mail_from and "@" in mail_from:
        domain = mail_from.rpartition("@")[2]
        result, detail = await _check_host(lookups, ip, domain, mail_from, helo)
        return SpfResult(result, domain.lower(), "mailfrom", detail)
    domain = (helo or "").lower().rstrip(".")
    if not domain or domain.startswith("["):
        return SpfResult(NONE, domain, "helo", "no usable HELO name")
    result, detail = await _check_host(lookups, ip, domain, f"postmaster@{domain}", helo)
    return SpfResult(result, domain, "helo", detail)
