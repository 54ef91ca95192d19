"""Package dns answers the questions outbound delivery asks: the MX hosts of a domain and the
addresses of a host.

Invariant: every lookup returns an ``Answer`` whose ``status`` tells apart "the name does not
exist" (NXDOMAIN, permanent), "the name exists but has no such record" (NODATA, which for MX means
implicit MX), and the two temporary failures (SERVFAIL, TIMEOUT). Callers never catch resolver
library exceptions.

DNSSEC: an answer is ``authenticated`` only when the resolver was declared validating
(``[dns] dnssec = "validating"``) and set the AD bit; todoku never validates signatures itself.
"""

from todoku.dns.resolver import (
    Answer,
    DnsStatus,
    MxRecord,
    Resolver,
    TlsaRecord,
    TlsaResolver,
    TxtResolver,
)

__all__ = [
    "Answer",
    "DnsStatus",
    "MxRecord",
    "Resolver",
    "TlsaRecord",
    "TlsaResolver",
    "TxtResolver",
]
