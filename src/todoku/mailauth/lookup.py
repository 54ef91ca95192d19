"""The DNS questions mail authentication asks (TXT, A, AAAA, MX, PTR), on the shared resolver.

``todoku.dns.dnspython.DnspythonResolver`` already knows the configured nameservers and maps
resolver exceptions to ``DnsStatus``; this module asks it for the other record types instead of
keeping a second resolver. ``TableLookups`` is the in-memory fake for socket-free unit tests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from todoku.dns.resolver import Answer, DnsStatus, MxRecord

if TYPE_CHECKING:
    from todoku.dns.dnspython import DnspythonResolver


class Lookups(Protocol):
    async def txt(self, name: str) -> Answer[str]:
        """TXT records, each one's strings joined (RFC 7208 §3.3)."""
        ...

    async def ipv4(self, name: str) -> Answer[str]: ...

    async def ipv6(self, name: str) -> Answer[str]: ...

    async def mx(self, name: str) -> Answer[MxRecord]: ...

    async def ptr(self, ip: str) -> Answer[str]: ...


def reverse_name(ip: str) -> str:
    """``192.0.2.1`` → ``1.2.0.192.in-addr.arpa`` (and nibbles under ip6.arpa for IPv6)."""
    return ipaddress.ip_address(ip).reverse_pointer


def _txt_text(record: object) -> str:
    strings = getattr(record, "strings", ())
    return b"".join(strings).decode("utf-8", "replace")


class ResolverLookups:
    """Adapter over ``DnspythonResolver``: same nameservers, same status mapping."""

    def __init__(self, resolver: DnspythonResolver) -> None:
        self._resolver = resolver

    async def _records(self, name: str, rdtype: str) -> tuple[DnsStatus, list[object], str]:
        return await self._resolver.query(name, rdtype)

    async def txt(self, name: str) -> Answer[str]:
        status, records, detail = await self._records(name, "TXT")
        return Answer(status, tuple(_txt_text(r) for r in records), detail)

    async def ipv4(self, name: str) -> Answer[str]:
        status, records, detail = await self._records(name, "A")
        return Answer(status, tuple(r.to_text() for r in records), detail)  # type: ignore[attr-defined]

    async def ipv6(self, name: str) -> Answer[str]:
        status, records, detail = await self._records(name, "AAAA")
        return Answer(status, tuple(r.to_text() for r in records), detail)  # type: ignore[attr-defined]

    async def mx(self, name: str) -> Answer[MxRecord]:
        return await self._resolver.mx(name)

    async def ptr(self, ip: str) -> Answer[str]:
        status, records, detail = await self._records(reverse_name(ip), "PTR")
        names = tuple(r.to_text().lower().rstrip(".") for r in records)  # type: ignore[attr-defined]
        return Answer(status, names, detail)


def lookups_for(nameservers: tuple[str, ...]) -> ResolverLookups:
    from todoku.dns.dnspython import DnspythonResolver

    return ResolverLookups(DnspythonResolver(nameservers, lifetime=5.0))


@dataclass
class TableLookups:
    """DNS as a table for unit tests: ``records[(name, "TXT")] = [...]``; names absent → NXDOMAIN."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    fail: dict[str, DnsStatus] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def _answer(self, name: str, rdtype: str) -> Answer[str]:
        name = name.lower().rstrip(".")
        self.asked.append((name, rdtype))
        if name in self.fail:
            return Answer(self.fail[name], (), f"{name}: {self.fail[name].value}")
        if (name, rdtype) in self.records:
            return Answer(DnsStatus.OK, tuple(self.records[(name, rdtype)]))
        if any(key[0] == name for key in self.records):
            return Answer(DnsStatus.NODATA)
        return Answer(DnsStatus.NXDOMAIN, (), f"{name}: NXDOMAIN")

    async def txt(self, name: str) -> Answer[str]:
        return self._answer(name, "TXT")

    async def ipv4(self, name: str) -> Answer[str]:
        return self._answer(name, "A")

    async def ipv6(self, name: str) -> Answer[str]:
        return self._answer(name, "AAAA")

    async def mx(self, name: str) -> Answer[MxRecord]:
        answer = self._answer(name, "MX")
        records = []
        for text in answer.records:
            preference, _, host = text.partition(" ")
            records.append(MxRecord(int(preference), host.lower().rstrip(".")))
        return Answer(answer.status, tuple(records), answer.detail)

    async def ptr(self, ip: str) -> Answer[str]:
        answer = self._answer(reverse_name(ip), "PTR")
        return Answer(
            answer.status, tuple(r.lower().rstrip(".") for r in answer.records), answer.detail
        )
