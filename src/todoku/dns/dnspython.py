"""The real resolver: dnspython's asyncio stub resolver, optionally pointed at given servers.

``nameservers`` entries are ``"host"`` or ``"host:port"`` (``"[::1]:5353"`` for IPv6 with a port),
so tests and split-horizon setups can use a resolver on a non-standard port.

``dnssec=True`` (``[dns] dnssec = "validating"``) says the configured resolver validates DNSSEC:
queries then carry the AD bit (RFC 6840 §5.7: a validating resolver sets AD in its reply only
when the query asks for it) and answers report it as ``authenticated``. Without it every answer
is unauthenticated whatever bits the reply carries (RFC 7672 §2.1.1 trusts AD only from a
validating resolver over a secure channel, such as one on this machine).
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.nameserver
import dns.rdatatype
import dns.resolver

from todoku.dns.resolver import Answer, DnsStatus, MxRecord, TlsaRecord

DEFAULT_LIFETIME = 10.0


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` → ("127.0.0.1", 5353); ``"::1"`` → ("::1", 53)."""
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
        return host, int(port) if port else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


def _host(text: str) -> str:
    """The root name "." (a null MX, RFC 7505 §3) becomes ""."""
    text = text.lower().rstrip(".")
    return text


class DnspythonResolver:
    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        lifetime: float = DEFAULT_LIFETIME,
        *,
        dnssec: bool = False,
    ) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port)
                for host, port in (parse_nameserver(n) for n in nameservers)
            ]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = lifetime
        self._resolver.timeout = min(lifetime, 3.0)
        self._resolver.cache = None
        self.dnssec = dnssec
        if dnssec:
            self._resolver.flags = dns.flags.RD | dns.flags.AD

    async def query(self, name: str, rdtype: str) -> tuple[DnsStatus, list[object], str]:
        """Any record type, with the resolver's failures mapped to a ``DnsStatus`` and a
        sentence for the logs (mail authentication asks TXT, PTR, A and AAAA through here)."""
        status, records, detail, _, _ = await self._resolve(name, rdtype)
        return status, records, detail

    async def _resolve(
        self, name: str, rdtype: str
    ) -> tuple[DnsStatus, list[object], str, float, bool]:
        """``query`` plus the answer's TTL in seconds (0 for anything but a positive answer)
        and whether it is authenticated (AD from a resolver declared validating; NOERROR only:
        positive answers and NODATA)."""
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return DnsStatus.NXDOMAIN, [], f"{name}: no such domain (NXDOMAIN)", 0.0, False
        except dns.resolver.NoNameservers as exc:
            return DnsStatus.SERVFAIL, [], f"{name}/{rdtype}: server failure ({exc})", 0.0, False
        except dns.exception.Timeout:
            return DnsStatus.TIMEOUT, [], f"{name}/{rdtype}: DNS timeout", 0.0, False
        except (dns.exception.DNSException, OSError) as exc:
            return DnsStatus.SERVFAIL, [], f"{name}/{rdtype}: {exc}", 0.0, False
        secure = self.dnssec and bool(answer.response.flags & dns.flags.AD)
        records = list(answer.rrset) if answer.rrset is not None else []
        if not records:
            return DnsStatus.NODATA, [], f"{name}: no {rdtype} record", 0.0, secure
        assert answer.rrset is not None
        return DnsStatus.OK, records, "", float(answer.rrset.ttl), secure

    async def mx(self, domain: str) -> Answer[MxRecord]:
        status, records, detail, ttl, secure = await self._resolve(domain, "MX")
        mx = tuple(
            MxRecord(int(r.preference), _host(r.exchange.to_text(omit_final_dot=True)))  # type: ignore[attr-defined]
            for r in records
        )
        return Answer(status, mx, detail, ttl, secure)

    async def txt(self, name: str) -> Answer[str]:
        status, records, detail, ttl, secure = await self._resolve(name, "TXT")
        texts = tuple(
            b"".join(r.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for r in records
        )
        return Answer(status, texts, detail, ttl, secure)

    async def tlsa(self, name: str) -> Answer[TlsaRecord]:
        status, records, detail, ttl, secure = await self._resolve(name, "TLSA")
        tlsa = tuple(
            TlsaRecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert))  # type: ignore[attr-defined]
            for r in records
        )
        return Answer(status, tlsa, detail, ttl, secure)

    async def addresses(self, host: str) -> Answer[str]:
        """AAAA then A. NXDOMAIN only when the name does not exist; one family failing
        temporarily is temporary only if the other family gave nothing either."""
        results = [await self._resolve(host, rdtype) for rdtype in ("AAAA", "A")]
        found = tuple(r.to_text() for _, records, _, _, _ in results for r in records)  # type: ignore[attr-defined]
        # Secure only if both families' answers are (RFC 7672 §2.2.2 asks it of the MX host).
        secure = all(s for *_, s in results)
        if found:
            ttl = min(t for s, _, _, t, _ in results if s is DnsStatus.OK)
            return Answer(DnsStatus.OK, found, "", ttl, secure)
        statuses = [status for status, _, _, _, _ in results]
        detail = "; ".join(d for _, _, d, _, _ in results if d)
        for status in (DnsStatus.NXDOMAIN, DnsStatus.SERVFAIL, DnsStatus.TIMEOUT):
            if status in statuses:
                return Answer(status, (), detail)
        return Answer(DnsStatus.NODATA, (), detail)
