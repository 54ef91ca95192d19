"""The deliverability page against a real DNS server on loopback (tests/dnsserver.py): the
records to publish with their copy buttons, which are published and which are not, PTR, DKIM
keys, a blocklist that lists our own address; and the 30-day chart of outbound results."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import PASSWORD, write_config
from tests.dnsserver import DnsServer
from tests.web.test_admin_pages import ADMIN, Clock, Site, log_in
from todoku.config import load_config
from todoku.outcome import Outcome, Verdict
from todoku.policy.auth import AuthThrottle, hash_password
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend
from todoku.web.admin import AdminPages
from todoku.web.deliverability import chart
from todoku.web.metrics import Metrics
from todoku.web.outcomes import DailyOutcomes, save
from todoku.web.routes import https_app

NOW = 1_796_400_000.0  # 2026-12-04 (UTC)


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("mx.example.test", "A", "127.0.0.1")
        server.add("1.0.0.127.in-addr.arpa", "PTR", "mx.example.test.")
        server.add("example.test", "MX", "10 mx.example.test.")
        server.add("example.test", "TXT", '"v=spf1 mx -all"')
        server.add("_dmarc.example.test", "TXT", '"v=DMARC1; p=quarantine"')
        # Our own address is on one blocklist and not on the other.
        server.add("1.0.0.127.bl.example.net", "A", "127.0.0.2")
        server.exists("clean.example.net")
        yield server


@pytest.fixture
async def site(tmp_path: Path, dns: DnsServer) -> AsyncIterator[Site]:
    extra = f'[dns]\nnameservers = ["{dns.address}"]\n\n[policy]\ndnsbl = ["bl.example.net", "clean.example.net"]\n'
    config = load_config(write_config(tmp_path, extra, services=("smtp", "submission")))
    store = SqliteStore(config.data_dir)
    store.add_user(ADMIN, hash_password(PASSWORD), admin=True)
    backend = SqliteBackend(store, config.domains)
    clock = Clock(NOW)
    daily = DailyOutcomes(clock=clock)
    metrics = Metrics(daily)
    pages = AdminPages(config, backend, metrics, AuthThrottle(), clock=clock)
    server = TestServer(https_app(config, backend, metrics, {"https": 443}, admin=pages))
    await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
    client = TestClient(server, cookie_jar=jar)
    await client.start_server()
    try:
        yield Site(client, store, config, pages, clock, "")
    finally:
        await client.close()
        await backend.close()


def attempt(verdict: Verdict, reason: str) -> Outcome:
    return Outcome("bob@remote.test", verdict, "rcpt", 550, "5.1.1", "no", "mx.remote.test", reason)


async def test_records_checks_keys_and_blocklists(site: Site) -> None:
    await log_in(site)
    answer = await site.client.get("/admin/deliverability")
    assert answer.status == 200
    page = await answer.text()
    # Each record to publish has a copy button holding its zone-file line.
    lines = [html.unescape(v) for v in re.findall(r'data-copy="([^"]*)"', page)]
    assert "example.test.\t3600\tIN\tMX\t10 mx.example.test." in lines
    assert any(line.startswith("_dmarc.example.test.\t") for line in lines)
    assert any("._domainkey.example.test.\t" in line for line in lines)
    assert any(line.startswith("1.0.0.127.in-addr.arpa.\t") and "PTR" in line for line in lines)
    # What is published (MX, SPF, PTR, DMARC) and what is not (DKIM, MTA-STS).
    found = {
        (purpose, name): status
        for status, purpose, name in re.findall(
            r'<tr class="finding-(\w+)"><td>([\w-]+)</td><td class="name">([^<]+)</td>', page
        )
    }
    assert found[("mx", "example.test")] == "ok"
    assert found[("mx", "example.org")] == "missing"
    assert found[("spf", "example.test")] == "ok"
    assert found[("ptr", "1.0.0.127.in-addr.arpa")] == "ok"
    assert found[("dmarc", "_dmarc.example.test")] == "ok"
    assert found[("mta-sts", "_mta-sts.example.test")] == "optional"  # missing, not required
    assert any(p == "dkim" and s == "missing" for (p, _), s in found.items())
    # DKIM keys: an RSA and an Ed25519 key per domain, all active.
    assert page.count("<td>active</td>") == 4
    # Blocklists: listed on one zone (with its answer), not on the other.
    assert re.search(r'<tr class="listed"><td>127.0.0.1</td><td>bl.example.net</td>', page)
    assert "127.0.0.2" in page
    assert re.search(r'<tr class="clean"><td>127.0.0.1</td><td>clean.example.net</td>', page)


async def test_the_chart_counts_results_by_day_and_reason(site: Site) -> None:
    metrics = site.pages.metrics
    for _ in range(3):
        metrics.delivered(attempt(Verdict.DELIVERED, "delivered"))
    metrics.delivered(attempt(Verdict.PERMANENT, "userunknown"))
    site.clock.now -= 86400  # yesterday
    metrics.delivered(attempt(Verdict.TEMPORARY, "networkerror"))
    site.clock.now += 86400
    await log_in(site)
    page = await (await site.client.get("/admin/deliverability")).text()
    svg = re.search(r'<svg class="chart".*?</svg>', page, re.DOTALL)
    assert svg is not None
    root = ET.fromstring(svg.group(0))
    titles = sorted(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title"))
    assert titles == [
        "2026-12-03 networkerror: 1",
        "2026-12-04 delivered: 3",
        "2026-12-04 userunknown: 1",
    ]
    assert "<b>userunknown</b>: 1 bounced" in page
    assert "<b>delivered</b>: 3 delivered" in page


def test_chart_is_escaped_and_says_when_empty() -> None:
    days = ["2026-12-04"]
    assert "No outbound results" in chart(days, [], "en")
    svg = chart(days, [("2026-12-04", "deferred", "<script>", 2)], "en")
    assert "<script>" not in svg and "&lt;script&gt;" in svg


async def test_daily_counts_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock(NOW)
    path = tmp_path / "web" / "outcomes.json"
    daily = DailyOutcomes(path, clock)
    daily.add("delivered", "delivered")
    daily.add("deferred", "networkerror")
    await save(daily)
    assert json.loads(path.read_text())["counts"]
    again = DailyOutcomes(path, clock)
    again.load()
    assert again.rows() == [
        ("2026-12-04", "deferred", "networkerror", 1),
        ("2026-12-04", "delivered", "delivered", 1),
    ]
    # 31 days on, those days are dropped at the next save.
    clock.now += 31 * 86400
    again.add("delivered", "delivered")
    await save(again)
    assert [row[0] for row in json.loads(path.read_text())["counts"]] == ["2027-01-04"]


def test_a_damaged_counts_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.json"
    path.write_text("{not json")
    daily = DailyOutcomes(path, Clock(NOW))
    daily.load()
    assert daily.rows() == []
