"""Fixtures for mail authentication tests: a loopback DNS server and lookups through our resolver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dnsserver import DnsServer
from todoku.mailauth.lookup import ResolverLookups, lookups_for


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def lookups(dns_server: DnsServer) -> ResolverLookups:
    return lookups_for((dns_server.address,))
