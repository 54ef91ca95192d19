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
    "no_outcomes": (
        "No outbound results recorded in the last 30 days.",
        "過去 30 日間の送信結果はありません。",
    ),
    "delivered": ("delivered", "配送済み"),
    "deferred": ("deferred", "再送待ち"),
    "bounced": ("bounced", "返送"),
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


DELIVERED_COLOUR = "#2e8b57"
PALETTE = ("#c0392b", "#e67e22", "#2980b9", "#8e44ad", "#b7950b", "#16a085", "#d35400", "#7f8c8d")
OTHER_COLOUR = "#bdc3c7"
BAR, GAP, HEIGHT, LEFT, BOTTOM, TOP = 18, 6, 160, 40, 24, 12


def chart(days: list[str], rows: list[tuple[str, str, str, int]], lang: str) -> Markup:
    """Outbound results per day as an inline SVG of stacked bars, one colour per reason word
    (delivered green, the most frequent other reasons from a fixed palette, the rest grey),
    and a legend that says each reason's results. No script: each segment's numbers are in
    its <title>, which browsers show on hover."""
    if not rows:
        return h("<p>$text</p>", text=_say("no_outcomes", lang))
    totals: dict[str, int] = {}
    per_result: dict[str, dict[str, int]] = {}
    per_day: dict[str, dict[str, int]] = {day: {} for day in days}
    for day, result, reason, count in rows:
        word = "delivered" if result == "delivered" else reason
        totals[word] = totals.get(word, 0) + count
        per_result.setdefault(word, {})
        per_result[word][result] = per_result[word].get(result, 0) + count
        if day in per_day:
            per_day[day][word] = per_day[day].get(word, 0) + count
    others = sorted((w for w in totals if w != "delivered"), key=lambda w: (-totals[w], w))
    colour = {"delivered": DELIVERED_COLOUR}
    colour.update(zip(others, PALETTE, strict=False))
    order = (["delivered"] if "delivered" in totals else []) + others
    highest = max((sum(v.values()) for v in per_day.values()), default=0) or 1
    width = LEFT + len(days) * (BAR + GAP)
    parts: list[Markup] = []
    for index, day in enumerate(days):
        x = LEFT + index * (BAR + GAP)
        y = float(TOP + HEIGHT)
        for word in order:
            count = per_day[day].get(word, 0)
            if not count:
                continue
            size = HEIGHT * count / highest
            y -= size
            parts.append(
                h(
                    '<rect x="$x" y="$y" width="$w" height="$hgt" fill="$fill">'
                    "<title>$day $word: $count</title></rect>",
                    x=x,
                    y=f"{y:.1f}",
                    w=BAR,
                    hgt=f"{size:.1f}",
                    fill=colour.get(word, OTHER_COLOUR),
                    day=day,
                    word=word,
                    count=count,
                )
            )
        last = index == len(days) - 1
        if index % 7 == 0 or (last and index % 7 >= 3):  # labels a week apart, and today
            parts.append(
                h(
                    '<text x="$x" y="$y" font-size="10">$label</text>',
                    x=x,
                    y=TOP + HEIGHT + 16,
                    label=day[5:],
                )
            )
    axis = h(
        '<line x1="$l" y1="$b" x2="$r" y2="$b" stroke="#555"/>'
        '<text x="2" y="$t" font-size="10">$max</text><text x="2" y="$b" font-size="10">0</text>',
        l=LEFT - 4,
        r=width,
        b=TOP + HEIGHT,
        t=TOP + 8,
        max=highest,
    )
    svg = h(
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="$w" height="$hgt"'
        ' viewBox="0 0 $w $hgt" role="img" aria-label="$label">$axis$bars</svg>',
        w=width,
        hgt=TOP + HEIGHT + BOTTOM,
        label=t(lang, "chart"),
        axis=axis,
        bars=parts,
    )
    legend = h(
        '<ul class="legend">$items</ul>',
        items=[
            h(
                '<li data-reason="$word"><svg width="12" height="12" aria-hidden="true">'
                '<rect width="12" height="12" fill="$fill"/></svg> <b>$word</b>: $counts</li>',
                word=word,
                fill=colour.get(word, OTHER_COLOUR),
                counts=", ".join(
                    f"{n} {_say(result, lang)}" for result, n in sorted(per_result[word].items())
                ),
            )
            for word in order
        ],
    )
    return esc([svg, legend])


def render(
    report: Report | None,
    lang: str,
    days: list[str],
    outcomes: list[tuple[str, str, str, int]],
) -> Markup:
    graph = h("<h2>$title</h2>$chart", title=t(lang, "chart"), chart=chart(days, outcomes, lang))
    if report is None:
        return esc([h('<p class="notice">$text</p>', text=_say("timeout", lang)), graph])
    parts: list[Markup] = [graph]
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
    return esc(parts)
