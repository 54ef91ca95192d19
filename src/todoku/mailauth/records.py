"""The DNS records a todoku administrator must publish (``todoku dns-records``), and the check
that they are published and right (``todoku diagnose --self``).

Records are zone-file lines, ready to paste into a DNS provider's "zone file import" or to copy
field by field. Values that todoku cannot know (the server's public addresses, when the host
name does not resolve yet and none were given) are printed as comment lines to fill in.

The diagnosis asks the configured resolver, so it sees what the rest of the world sees (with
``[dns] nameservers`` pointing at a public resolver) and can be tested on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from todoku.config import Config
from todoku.mailauth import spf
from todoku.mailauth.dkim import DomainKeys
from todoku.mailauth.lookup import Lookups
from todoku.mailauth.mta_sts import policy_id, policy_text

TTL = 3600
STANDARD_PORTS = {
    "submission": 587,
    "submissions": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
}
SRV_NAMES = {
    "submission": "_submission._tcp",
    "submissions": "_submissions._tcp",
    "imap": "_imap._tcp",
    "imaps": "_imaps._tcp",
    "pop3": "_pop3._tcp",
    "pop3s": "_pop3s._tcp",
}
WEB_NAMES = {
    "mta-sts": "the MTA-STS policy",
    "autoconfig": "Thunderbird's autoconfiguration",
    "autodiscover": "Outlook's Autodiscover",
}
REQUIRED = ("mx", "a", "ptr", "spf", "dkim", "dmarc")  # the rest improve delivery but are optional


@dataclass(frozen=True, slots=True)
class DnsRecord:
    purpose: str  # mx, a, aaaa, spf, spf-helo, dkim, dmarc, mta-sts, tls-rpt, web, srv, ptr
    name: str  # absolute, without the final dot
    rdtype: str
    value: str  # TXT: the text itself (unquoted); others: presentation format
    note: str = ""
    provider: bool = False  # set by the hosting provider, not in your zone (PTR)

    def zone_line(self) -> str:
        value = self.value
        if self.rdtype == "TXT":
            # RFC 1035 §3.3.14: a TXT record is strings of at most 255 octets each.
            value = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.name}.\t{TTL}\tIN\t{self.rdtype}\t{value}"


def mta_sts_id(config: Config) -> str:
    """Changes only when the served policy does (a hash of its text, mailauth/mta_sts.py)."""
    return policy_id(policy_text(config))


def records_for(
    config: Config,
    domain: str,
    keys: DomainKeys,
    ipv4: tuple[str, ...],
    ipv6: tuple[str, ...],
) -> list[DnsRecord]:
    host = config.hostname
    rua = f"mailto:postmaster@{domain}"
    out = [
        DnsRecord(
            "mx", domain, "MX", f"10 {host}.", "where other servers deliver mail for this domain"
        ),
    ]
    out += [DnsRecord("a", host, "A", ip, "the mail server's IPv4 address") for ip in ipv4]
    out += [DnsRecord("aaaa", host, "AAAA", ip, "the mail server's IPv6 address") for ip in ipv6]
    out.append(
        DnsRecord(
            "spf", domain, "TXT", "v=spf1 mx -all", "SPF: only this domain's MX hosts send its mail"
        )
    )
    out.append(
        DnsRecord(
            "spf-helo", host, "TXT", "v=spf1 a -all", "SPF for the HELO name, checked on bounces"
        )
    )
    for key, role in keys.published():
        note = {
            "active": f"DKIM {key.algorithm} key in use",
            "pending": f"DKIM {key.algorithm} key of a rotation: publish now, used after the grace period",
            "retired": f"DKIM {key.algorithm} key retired: keep until it is no longer printed",
        }[role]
        out.append(DnsRecord("dkim", key.record_name, "TXT", key.record_text, note))
    out.append(
        DnsRecord(
            "dmarc",
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; rua={rua}",
            "DMARC: receivers junk mail failing SPF and DKIM, and send reports to postmaster",
        )
    )
    served = "todoku serves" if config.web.https is not None else "serve (add [listen] https)"
    policy = " / ".join(policy_text(config).splitlines())
    out.append(
        DnsRecord(
            "mta-sts",
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={mta_sts_id(config)}",
            f"MTA-STS (RFC 8461); {served} https://mta-sts.{domain}/.well-known/mta-sts.txt:"
            f" {policy}",
        )
    )
    if config.web.https is not None:  # todoku.web answers these names; the certificate must too
        for name, what in WEB_NAMES.items():
            out.append(DnsRecord("web", f"{name}.{domain}", "CNAME", f"{host}.", f"{what} (https)"))
    out.append(
        DnsRecord(
            "tls-rpt",
            f"_smtp._tls.{domain}",
            "TXT",
            f"v=TLSRPTv1; rua={rua}",
            "TLS reports (RFC 8460)",
        )
    )
    for service, name in SRV_NAMES.items():
        if service in config.listen:
            out.append(
                DnsRecord(
                    "srv",
                    f"{name}.{domain}",
                    "SRV",
                    f"0 1 {STANDARD_PORTS[service]} {host}.",
                    "lets mail programs find the server (RFC 6186)",
                )
            )
    for service in ("imap", "imaps"):
        if service not in config.listen:
            name = f"{SRV_NAMES[service]}.{domain}"
            note = "no IMAP here (RFC 6186 §3.4)"
            out.append(DnsRecord("srv", name, "SRV", "0 0 0 .", note))
    for ip in ipv4 + ipv6:
        out.append(
            DnsRecord(
                "ptr",
                ipaddress.ip_address(ip).reverse_pointer,
                "PTR",
                f"{host}.",
                "reverse DNS: ask your hosting provider to set it",
                provider=True,
            )
        )
    return out


def render(config: Config, domain: str, records: list[DnsRecord], addresses_known: bool) -> str:
    lines = [f"; DNS records for {domain}, mail server {config.hostname} (todoku dns-records)"]
    if not addresses_known:
        lines.append(
            f"; {config.hostname} has no address in DNS yet and none was given (--ipv4/--ipv6):"
        )
        lines.append(f"; {config.hostname}.\t{TTL}\tIN\tA\t<this server's public IPv4 address>")
        lines.append(f"; {config.hostname}.\t{TTL}\tIN\tAAAA\t<this server's public IPv6 address>")
    zone = [r for r in records if not r.provider]
    provider = [r for r in records if r.provider]
    for record in zone:
        lines.append(f"; {record.note}")
        lines.append(record.zone_line())
    lines.append(";")
    lines.append("; Set by your hosting provider (not in your zone): reverse DNS of each address")
    if provider:
        lines += [f"; {r.zone_line()}" for r in provider]
    else:
        lines.append(f"; <reversed address>.in-addr.arpa.\tPTR\t{config.hostname}.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- diagnose --self

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "ok": "ok",
        "missing": "MISSING",
        "wrong": "WRONG",
        "mx": "MX of {domain}: other servers look here to deliver mail to {domain}. Without it most "
        "fall back to the domain's address; many providers refuse mail from a domain without MX.",
        "a": "Address of {host}: without it nobody can reach this server, and receivers refuse "
        "mail from a HELO name that does not resolve.",
        "ptr": "Reverse DNS (PTR) of {ip}: must be {host}. Gmail refuses mail from addresses without "
        'matching reverse DNS (550 5.7.25, or 421 4.7.0 "PTR"); Outlook and Yahoo junk or delay it. '
        "Only your hosting provider can set it.",
        "spf": "SPF of {domain}: Gmail, Outlook and Yahoo require SPF or DKIM on all mail, and "
        'reject unauthenticated mail (550 5.7.26 "unauthenticated").',
        "spf-helo": "SPF of the HELO name {host}: bounces (empty sender) are judged by it.",
        "dkim": "DKIM key {name}: without it our signatures cannot be checked; Gmail and Yahoo "
        "require DKIM for bulk senders and treat unsigned mail as suspect.",
        "dmarc": "DMARC of {domain}: Gmail, Yahoo and Outlook.com require a DMARC record for bulk "
        "senders (5000+ messages a day), and it stops others from sending as {domain}.",
        "mta-sts": "MTA-STS of {domain} (optional): tells senders to insist on TLS.",
        "tls-rpt": "TLS-RPT of {domain} (optional): receivers report TLS problems to postmaster.",
        "srv": "{name} (optional): lets mail programs set themselves up.",
        "published": "published: {found}",
        "expected": "expected: {expected}",
        "spf-result": "SPF for {ip} gives {result}",
        "summary_ok": "All required records are published.",
        "summary_bad": "{count} required record(s) missing or wrong: mail to and from {domains} may be refused or junked.",
    },
    "ja": {
        "ok": "OK",
        "missing": "未設定",
        "wrong": "誤り",
        "mx": "{domain} の MX: 他のサーバーは {domain} 宛てのメールの配送先をここで調べます。無いと多くは"
        "ドメインのアドレスに配送を試みますが、MX の無いドメインからのメールを拒否するプロバイダも多くあります。",
        "a": "{host} のアドレス: 無いとこのサーバーに誰も接続できず、解決できない HELO 名のメールは拒否されます。",
        "ptr": "{ip} の逆引き (PTR): {host} である必要があります。Gmail は逆引きが一致しないアドレスからのメールを"
        '拒否し (550 5.7.25 や 421 4.7.0 "PTR")、Outlook と Yahoo は迷惑メール扱いや遅延にします。'
        "設定できるのはホスティング事業者だけです。",
        "spf": "{domain} の SPF: Gmail・Outlook・Yahoo はすべてのメールに SPF か DKIM を求め、"
        '認証の無いメールを拒否します (550 5.7.26 "unauthenticated")。',
        "spf-helo": "HELO 名 {host} の SPF: エラーメール (空の送信者) はこれで判定されます。",
        "dkim": "DKIM 鍵 {name}: 無いと署名を検証できません。Gmail と Yahoo は大量送信者に DKIM を求め、"
        "署名の無いメールを疑わしいものとして扱います。",
        "dmarc": "{domain} の DMARC: Gmail・Yahoo・Outlook.com は大量送信者 (1 日 5000 通以上) に DMARC を求めます。"
        "他人が {domain} を名乗って送ることも防ぎます。",
        "mta-sts": "{domain} の MTA-STS (任意): 送信側に TLS の使用を求めます。",
        "tls-rpt": "{domain} の TLS-RPT (任意): 受信側が TLS の問題を postmaster に報告します。",
        "srv": "{name} (任意): メールソフトが自動で設定できるようになります。",
        "published": "公開されている値: {found}",
        "expected": "期待する値: {expected}",
        "spf-result": "{ip} の SPF 判定: {result}",
        "summary_ok": "必要なレコードはすべて公開されています。",
        "summary_bad": "必要なレコードのうち {count} 件が未設定または誤りです。{domains} のメールは拒否されたり迷惑メールになったりします。",
    },
}


@dataclass(frozen=True, slots=True)
class Finding:
    purpose: str
    name: str
    status: str  # ok, missing, wrong
    required: bool
    explanation: str
    detail: str = ""


def _normal_txt(text: str) -> str:
    return " ".join(text.replace(";", "; ").split()).lower()


def _dkim_key(text: str) -> str:
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip() == "p":
            return "".join(value.split())
    return ""


async def _host_addresses(lookups: Lookups, host: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    four, six = await asyncio.gather(lookups.ipv4(host), lookups.ipv6(host))
    return four.records, six.records


async def diagnose(
    config: Config, lookups: Lookups, keys: dict[str, DomainKeys], lang: str = "en"
) -> list[Finding]:
    text = MESSAGES.get(lang, MESSAGES["en"])
    host = config.hostname
    findings: list[Finding] = []

    def add(purpose: str, name: str, status: str, detail: str = "", **words: str) -> None:
        explanation = text[purpose].format(name=name, host=host, **words)
        required = purpose in REQUIRED
        findings.append(Finding(purpose, name, status, required, explanation, detail))

    ipv4, ipv6 = await _host_addresses(lookups, host)
    addresses = ipv4 + ipv6
    add(
        "a",
        host,
        "ok" if addresses else "missing",
        text["published"].format(found=", ".join(addresses)) if addresses else "",
    )
    for ip in addresses:
        ptr = await lookups.ptr(ip)
        names = [n.lower().rstrip(".") for n in ptr.records]
        if not names:
            add("ptr", ipaddress.ip_address(ip).reverse_pointer, "missing", ip=ip)
        elif host not in names:
            add(
                "ptr",
                ipaddress.ip_address(ip).reverse_pointer,
                "wrong",
                text["published"].format(found=", ".join(names)),
                ip=ip,
            )
        else:
            add("ptr", ipaddress.ip_address(ip).reverse_pointer, "ok", ip=ip)
    helo_txt = await lookups.txt(host)
    helo_spf = [t for t in helo_txt.records if t.lower().startswith("v=spf1")]
    add("spf-helo", host, "ok" if helo_spf else "missing")

    for domain in config.domains:
        mx = await lookups.mx(domain)
        hosts = [r.host for r in mx.records]
        if not hosts:
            add("mx", domain, "missing", domain=domain)
        elif host not in hosts:
            add(
                "mx",
                domain,
                "wrong",
                text["published"].format(found=", ".join(hosts)),
                domain=domain,
            )
        else:
            add("mx", domain, "ok", domain=domain)

        txt = await lookups.txt(domain)
        spf_records = [
            t for t in txt.records if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")
        ]
        if not spf_records:
            add("spf", domain, "missing", domain=domain)
        else:
            bad = []
            for ip in addresses:
                result = await spf.check_host(lookups, ip, domain, f"postmaster@{domain}", host)
                if result != spf.PASS:
                    bad.append(text["spf-result"].format(ip=ip, result=result))
            add(
                "spf",
                domain,
                "wrong" if bad else "ok",
                "; ".join(bad) or spf_records[0],
                domain=domain,
            )

        domain_keys = keys.get(domain)
        if domain_keys is not None:
            for key, role in domain_keys.published():
                if role == "retired":
                    continue
                answer = await lookups.txt(key.record_name)
                published = [_dkim_key(t) for t in answer.records if "p=" in t]
                if not published:
                    add(
                        "dkim",
                        key.record_name,
                        "missing",
                        text["expected"].format(expected=key.record_text),
                    )
                elif key.public_b64 not in published:
                    add(
                        "dkim",
                        key.record_name,
                        "wrong",
                        text["expected"].format(expected=key.record_text),
                    )
                else:
                    add("dkim", key.record_name, "ok")

        for purpose, name, prefix in (
            ("dmarc", f"_dmarc.{domain}", "v=dmarc1"),
            ("mta-sts", f"_mta-sts.{domain}", "v=stsv1"),
            ("tls-rpt", f"_smtp._tls.{domain}", "v=tlsrptv1"),
        ):
            answer = await lookups.txt(name)
            found = [t for t in answer.records if _normal_txt(t).startswith(prefix)]
            add(
                purpose,
                name,
                "ok" if found else "missing",
                found[0] if found else "",
                domain=domain,
            )

        for service, srv_name in SRV_NAMES.items():
            if service in config.listen:
                name = f"{srv_name}.{domain}"
                answer = await lookups.txt(name)  # existence is enough: any answer but NXDOMAIN
                add("srv", name, "missing" if answer.status.value == "nxdomain" else "ok")
    return findings


def report(findings: list[Finding], config: Config, lang: str = "en") -> tuple[str, int]:
    """The plain-words report, and the exit status: 0 all required ok, 1 something required is not."""
    text = MESSAGES.get(lang, MESSAGES["en"])
    lines = []
    for finding in findings:
        mark = {"ok": "  ok ", "missing": "  !! ", "wrong": "  !! "}[finding.status]
        if not finding.required and finding.status != "ok":
            mark = "  -- "
        lines.append(f"{mark}[{text[finding.status]}] {finding.purpose:<8} {finding.name}")
        if finding.status != "ok":
            lines.append(f"       {finding.explanation}")
            if finding.detail:
                lines.append(f"       {finding.detail}")
    bad = [f for f in findings if f.required and f.status != "ok"]
    if bad:
        lines.append(text["summary_bad"].format(count=len(bad), domains=", ".join(config.domains)))
    else:
        lines.append(text["summary_ok"])
    return "\n".join(lines) + "\n", 1 if bad else 0
