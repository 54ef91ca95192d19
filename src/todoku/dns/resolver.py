"""The resolver interface the queue depends on, and the answer shapes it returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class DnsStatus(enum.Enum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # RFC 1035 RCODE 3: the name does not exist (permanent)
    NODATA = "nodata"  # the name exists, but has no record of the asked type
    SERVFAIL = "servfail"  # the servers could not answer (temporary)
    TIMEOUT = "timeout"  # no answer in time (temporary)

    @property
    def is_temporary(self) -> bool:
        return self in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT)


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    host: str  # lower-case, without the trailing dot; "" for the null MX "." (RFC 7505)


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    status: DnsStatus
    records: tuple[T, ...] = ()
    detail: str = ""  # what the resolver said, for logs and reports
    ttl: float = 0.0  # seconds a positive answer may be reused; 0: do not keep it
    # DNSSEC (RFC 4035 §3.2.3): the resolver set the AD bit, and it is declared to validate
    # ([dns] dnssec = "validating"). Always False otherwise: an AD bit from a resolver nobody
    # vouched for proves nothing.
    authenticated: bool = False

    @property
    def ok(self) -> bool:
        return self.status is DnsStatus.OK


class Resolver(Protocol):
    async def mx(self, domain: str) -> Answer[MxRecord]:
        """MX records of ``domain`` (status NODATA when it has none)."""
        ...

    async def addresses(self, host: str) -> Answer[str]:
        """IPv6 and IPv4 addresses of ``host`` (AAAA first, then A), as text."""
        ...


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """One TLSA record (RFC 6698 §2.1): certificate usage, selector, matching type, data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


class TlsaResolver(Protocol):
    """TLSA lookups for DANE (RFC 7672 §2.2: ``_25._tcp.<mx-host>``)."""

    async def tlsa(self, name: str) -> Answer[TlsaRecord]: ...


class TxtResolver(Protocol):
    """TXT lookups (MTA-STS's ``_mta-sts`` record, RFC 8461 §3.1)."""

    async def txt(self, name: str) -> Answer[str]:
        """Each TXT record of ``name`` as one string: its character-strings joined, decoded as
        UTF-8 with undecodable bytes replaced."""
        ...
