"""An in-memory resolver for unit tests: DNS as tables (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

from todoku.dns.resolver import Answer, DnsStatus, MxRecord, TlsaRecord


@dataclass
class MockResolver:
    mx_records: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hosts: dict[str, list[str]] = field(default_factory=dict)
    fail: dict[str, DnsStatus] = field(default_factory=dict)  # name → SERVFAIL/TIMEOUT/NXDOMAIN
    txt_records: dict[str, list[str]] = field(default_factory=dict)
    tlsa_records: dict[str, list[TlsaRecord]] = field(default_factory=dict)
    # Names whose answers (records or NODATA) come back authenticated, as from a validating
    # resolver that set the AD bit.
    authenticated: set[str] = field(default_factory=set)

    def _exists(self, name: str) -> bool:
        return (
            name in self.mx_records
            or name in self.hosts
            or name in self.txt_records
            or name in self.tlsa_records
        )

    async def tlsa(self, name: str) -> Answer[TlsaRecord]:
        if name in self.fail:
            return Answer(self.fail[name], (), f"{name}: {self.fail[name].value}")
        secure = name in self.authenticated
        if name in self.tlsa_records:
            return Answer(DnsStatus.OK, tuple(self.tlsa_records[name]), authenticated=secure)
        if self._exists(name):
            return Answer(DnsStatus.NODATA, authenticated=secure)
        return Answer(DnsStatus.NXDOMAIN, (), f"{name}: no such domain (NXDOMAIN)")

    async def txt(self, name: str) -> Answer[str]:
        if name in self.fail:
            return Answer(self.fail[name], (), f"{name}: {self.fail[name].value}")
        if name in self.txt_records:
            return Answer(DnsStatus.OK, tuple(self.txt_records[name]))
        if self._exists(name):
            return Answer(DnsStatus.NODATA)
        return Answer(DnsStatus.NXDOMAIN, (), f"{name}: no such domain (NXDOMAIN)")

    async def mx(self, domain: str) -> Answer[MxRecord]:
        if domain in self.fail:
            return Answer(self.fail[domain], (), f"{domain}: {self.fail[domain].value}")
        if domain in self.mx_records:
            return Answer(
                DnsStatus.OK,
                tuple(MxRecord(p, h.rstrip(".").lower()) for p, h in self.mx_records[domain]),
                authenticated=domain in self.authenticated,
            )
        if self._exists(domain):
            return Answer(DnsStatus.NODATA, authenticated=domain in self.authenticated)
        return Answer(DnsStatus.NXDOMAIN, (), f"{domain}: no such domain (NXDOMAIN)")

    async def addresses(self, host: str) -> Answer[str]:
        if host in self.fail:
            return Answer(self.fail[host], (), f"{host}: {self.fail[host].value}")
        if host in self.hosts:
            return Answer(
                DnsStatus.OK, tuple(self.hosts[host]), authenticated=host in self.authenticated
            )
        if self._exists(host):
            return Answer(DnsStatus.NODATA)
        return Answer(DnsStatus.NXDOMAIN, (), f"{host}: no such domain (NXDOMAIN)")
