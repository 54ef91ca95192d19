"""TLS reporting inside the real ``todoku serve`` (issue 15): with the default ``[tlsrpt]``, a
direct delivery's TLS session is noted, and a clean shutdown writes it to
``<data_dir>/tlsrpt/<day>.jsonl`` (the daily sending itself runs in virtual time in
tests/queue/test_tlsrpt_live.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.net.test_outbound_e2e import delivery_config, start, submit, wait_until
from tests.queue.fakemx import FakeMx, fake_mxes
from todoku.queue.tlsrpt import TlsSession


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("remote.test", "MX", "10 mx1.remote.test.")
        server.add("mx1.remote.test", "A", "127.0.0.2")
        yield server


@pytest.fixture
def mx() -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2") as (fake,):
        yield fake


def test_a_delivery_is_noted_for_the_daily_tls_report(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    server = start(make_server, delivery_config(dns_server, mx.port))
    submit(server, ["bob@remote.test"])
    mx.wait_for(1)
    wait_until(lambda: "=> delivered" in server.log(), what="the delivery to be recorded")
    assert server.stop() == 0
    files = list((server.data_dir / "tlsrpt").glob("*.jsonl"))
    sessions = [TlsSession.from_json(line) for f in files for line in f.read_text().splitlines()]
    [session] = sessions
    assert session is not None
    assert (session.domain, session.policy_type) == ("remote.test", "no-policy-found")
    # The fake MX offers no STARTTLS: RFC 8460 §4.3.1.
    assert session.result == "starttls-not-supported"
    assert (session.mx_host, session.receiving_ip) == ("mx1.remote.test", "127.0.0.2")
    assert session.sending_ip.startswith("127.")
