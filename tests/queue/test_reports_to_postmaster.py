"""Issue 16: a report whose recipient is a local address nobody receives (cron's
``todoku sendmail`` as ``root@<domain>``) is delivered to postmaster, and the log says so
instead of claiming it was sent. Through the real ``todoku serve`` process: sendmail → queue →
the loopback DNS server → a fake MX that refuses the recipient → the bounce."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.queue.fakemx import FakeMx, fake_mxes
from tests.queue.reports import parse_report
from todoku.store.sqlite import SqliteStore

ROOT = "root@example.test"
POSTMASTER = "postmaster@example.test"


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


def mailbox(server: TodokuServer, address: str) -> list[bytes]:
    store = SqliteStore(server.data_dir)
    try:
        out = []
        for message in store.list_messages(address):
            with store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out
    finally:
        store.close()


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start(make_server: Callable[..., TodokuServer], dns: DnsServer, port: int) -> TodokuServer:
    extra = (
        f'[dns]\nnameservers = ["{dns.address}"]\n\n'
        f'[delivery]\nport = {port}\nretry = ["1s"]\ndelay_warning = "0"\nmax_lifetime = "1h"\n'
    )
    server = make_server(extra=extra, start=False)
    server.add_user("alice@example.test")
    server.start()
    return server


def test_bounce_for_a_missing_local_sender_reaches_postmaster(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    server = start(make_server, dns_server, mx.port)
    server.cli("sendmail", "-f", ROOT, "unknown@remote.test", input="Subject: cron\n\nout\n")
    wait_until(lambda: mailbox(server, POSTMASTER), "the report in postmaster's mailbox")
    [data] = mailbox(server, POSTMASTER)
    [recipient] = parse_report(data).recipients
    assert recipient["Final-Recipient"] == "rfc822; unknown@remote.test"
    assert recipient["Action"] == "failed"
    assert b"Subject: cron" in data  # the returned message rides along
    assert mailbox(server, ROOT) == []
    log = server.log()
    assert f"report for <{ROOT}> (no such mailbox) delivered to {POSTMASTER}" in log
    assert "dropped: no such local mailbox" not in log
    assert f"sent to <{ROOT}>" not in log  # no line claims what did not happen


def test_postmaster_alias_is_followed(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    server = start(make_server, dns_server, mx.port)
    server.cli("alias", "add", POSTMASTER, "alice@example.test")
    server.cli("sendmail", "-f", ROOT, "unknown@remote.test", input="Subject: cron\n\nout\n")
    wait_until(lambda: mailbox(server, "alice@example.test"), "the report in alice's mailbox")
    assert mailbox(server, POSTMASTER) == []
    log = server.log()
    assert f"report for <{ROOT}> (no such mailbox) delivered to alice@example.test" in log
