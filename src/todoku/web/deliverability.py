"""The deliverability page: ``todoku diagnose --self`` and ``todoku dns-records`` in a browser.

What is checked, with the same code as the commands (mailauth/records.py): the DNS records to
publish for every local domain (each with a copy button), whether they are published and right
(MX, A/AAAA, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV), the DKIM keys and their rotation,
and whether this server's own addresses are listed on the blocklists of ``[policy] dnsbl``.
DNS is asked through ``[dns] nameservers``, as the commands and the queue ask it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from todoku.config import Config
from todoku.mailauth.dkim import DomainKeys
from todoku.mailauth.records import DnsRecord, Finding
from todoku.web.html import Markup, esc, h, t


@dataclass(frozen=True, slots=True)
class Listing:
    ip: str
    zone: str
    listed: tuple[str, ...]  # the 127.x answers; () when not listed
    error: str = ""  # the lookup failed (not an answer either way)


@dataclass
class Report:
    addresses: tuple[str, ...] = ()
    records: dict[str, list[DnsRecord]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    keys: dict[str, DomainKeys] = field(default_factory=dict)
    listings: list[Listing] = field(default_factory=list)
    zones: tuple[str, ...] = ()


async def check(config: Config, lang: str) -> Report:
    from todoku.mailauth.dnsbl import query_name
    from todoku.mailauth.lookup import lookups_for
    from todoku.mailauth.records import diagnose, records_for
    from todoku.mailauth.setup import key_store

    lookups = lookups_for(config.nameservers)
    store = key_store(config)
    keys = await asyncio.to_thread(lambda: {d: store.load(d) for d in config.domains})
    four, six = await asyncio.gather(lookups.ipv4(config.hostname), lookups.ipv6(config.hostname))
    report = Report(addresses=four.records + six.records, keys=keys, zones=config.policy.dnsbl)
    for domain in config.domains:
        report.records[domain] = records_for(
            config, domain, keys[domain], four.records, six.records
        )
    report.findings = await diagnose(config, lookups, keys, lang)
    pairs = [(ip, zone) for ip in report.addresses for zone in config.policy.dnsbl]
    answers = await asyncio.gather(*(lookups.ipv4(query_name(ip, zone)) for ip, zone in pairs))
    for (ip, zone), answer in zip(pairs, answers, strict=True):
        listed = tuple(a for a in answer.records if a.startswith("127."))
        failed = not answer.ok and answer.status.value != "nxdomain"
        report.listings.append(Listing(ip, zone, listed, answer.detail if failed else ""))
    return report


_TEXT = {
    "timeout": (
        "The DNS checks did not finish in time: is [dns] nameservers reachable?",
        "DNS の確認が時間内に終わりませんでした。[dns] nameservers に届きますか？",
    ),
    "no_zones": (
        "No blocklists are configured ([policy] dnsbl): none was asked.",
        "ブロックリストが設定されていません（[policy] dnsbl）。",
    ),
    "no_address": (
        "The host name has no address in DNS yet: nothing to look up.",
        "ホスト名の DNS アドレスがまだありません。",
    ),
    "listed": ("listed", "掲載あり"),
    "clean": ("not listed", "掲載なし"),
    "error": ("lookup failed", "問い合わせ失敗"),
    "ok": ("ok", "OK"),
    "missing": ("missing", "未公開"),
    "wrong": ("wrong", "誤り"),
    "switch": ("signing switches to the new keys at", "新しい鍵での署名に切り替わる時刻:"),
}


def _say(key: str, lang: str) -> str:
    en, ja = _TEXT[key]
    return ja if lang == "ja" else en


def _records_table(lang: str, domain: str, records: list[DnsRecord]) -> Markup:
    rows = [
        h(
            """<tr><td class="name">$name</td><td>$type</td><td class="value"><code>$value</code></td>
<td>$note</td><td><button type="button" class="copy" data-copy="$line">$copy</button></td></tr>""",
            name=record.name,
            type=record.rdtype,
            value=record.value,
            note=record.note,
            line=record.zone_line(),
            copy=t(lang, "copy"),
        )
        for record in records
    ]
    return h(
        """<h3>$domain</h3><table class="records"><thead><tr><th>$name</th><th>$type</th>
<th>$value</th><th>$note</th><th></th></tr></thead><tbody>$rows</tbody></table>""",
        domain=domain,
        name=t(lang, "name"),
        type=t(lang, "type"),
        value=t(lang, "value"),
        note=t(lang, "note"),
        rows=rows,
    )


def render(report: Report | None, lang: str, now: float) -> Markup:
    if report is None:
        return h('<p class="notice">$text</p>', text=_say("timeout", lang))
    parts: list[Markup] = []
    findings = [
        h(
            """<tr class="finding-$status"><td>$purpose</td><td class="name">$name</td>
<td class="status">$word</td><td>$explain $detail</td></tr>""",
            status=f.status if f.required or f.status == "ok" else "optional",
            purpose=f.purpose,
            name=f.name,
            word=_say(f.status, lang),
            explain=f.explanation if f.status != "ok" else "",
            detail=f.detail,
        )
        for f in report.findings
    ]
    parts.append(
        h(
            """<h2>$title</h2><table class="checks"><tbody>$rows</tbody></table>""",
            title=t(lang, "checks"),
            rows=findings,
        )
    )
    parts.append(h("<h2>$title</h2>", title=t(lang, "records")))
    parts.extend(_records_table(lang, d, r) for d, r in report.records.items())
    key_rows = []
    for domain, keys in report.keys.items():
        for key, role in keys.published():
            key_rows.append(
                h(
                    "<tr><td>$domain</td><td>$selector</td><td>$algorithm</td><td>$role</td></tr>",
                    domain=domain,
                    selector=key.selector,
                    algorithm=key.algorithm,
                    role=role,
                )
            )
        if keys.pending is not None:
            switch = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(keys.switch_after))
            key_rows.append(
                h(
                    '<tr><td colspan="4">$d: $say $at</td></tr>',
                    d=domain,
                    say=_say("switch", lang),
                    at=switch,
                )
            )
    parts.append(
        h(
            """<h2>$title</h2><table class="keys"><tbody>$rows</tbody></table>""",
            title=t(lang, "dkim_keys"),
            rows=key_rows,
        )
    )
    if not report.zones:
        lists: Markup = h("<p>$text</p>", text=_say("no_zones", lang))
    elif not report.addresses:
        lists = h("<p>$text</p>", text=_say("no_address", lang))
    else:
        lists = h(
            '<table class="blocklists"><tbody>$rows</tbody></table>',
            rows=[
                h(
                    '<tr class="$cls"><td>$ip</td><td>$zone</td><td>$word $answers</td></tr>',
                    cls="listed" if item.listed else "error" if item.error else "clean",
                    ip=item.ip,
                    zone=item.zone,
                    word=_say(
                        "listed" if item.listed else "error" if item.error else "clean", lang
                    ),
                    answers=" ".join(item.listed) or item.error,
                )
                for item in report.listings
            ],
        )
    parts.append(h("<h2>$title</h2>$lists", title=t(lang, "blocklists"), lists=lists))
    del now
    return esc(parts)
