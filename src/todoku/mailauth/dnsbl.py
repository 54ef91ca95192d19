"""DNS blocklists (DNSBL, RFC 5782): is the connecting client listed?

A client 192.0.2.1 is listed on zen.spamhaus.org when ``1.2.0.192.zen.spamhaus.org`` has an A
record; RFC 5782 §2.1 says the answers are in 127.0.0.0/8, so other answers (a resolver that
"helpfully" returns an advertising address for NXDOMAIN) do not count. A lookup that fails
temporarily does not block: a broken blocklist must not stop mail.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from todoku.mailauth.lookup import Lookups
from todoku.proto.smtp.codes import Reply


@dataclass(frozen=True, slots=True)
class Listing:
    zone: str
    answers: tuple[str, ...]


def query_name(ip: str, zone: str) -> str:
    """RFC 5782 §2.1 (IPv4: reversed octets) and §2.4 (IPv6: reversed nibbles)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    reversed_part = address.reverse_pointer.rsplit(".", 2)[0]  # drop in-addr.arpa / ip6.arpa
    return f"{reversed_part}.{zone.strip('.')}"


def blocked_reply(ip: str, zone: str) -> Reply:
    """The reply Postfix gives, which administrators and users already recognise."""
    return Reply(554, "5.7.1", f"Service unavailable; Client host [{ip}] blocked using {zone}")


async def first_listing(lookups: Lookups, ip: str, zones: tuple[str, ...]) -> Listing | None:
    """Ask every zone at once; the first zone in configuration order that lists the client."""
    if not zones:
        return None
    answers = await asyncio.gather(*(lookups.ipv4(query_name(ip, zone)) for zone in zones))
    for zone, answer in zip(zones, answers, strict=True):
        listed = tuple(a for a in answer.records if a.startswith("127."))
        if listed:
            return Listing(zone, listed)
    return None
