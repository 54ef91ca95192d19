from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dnsserver import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server
