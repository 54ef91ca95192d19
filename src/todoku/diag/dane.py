"""One line of ``todoku diagnose --self``: whether outbound DANE (RFC 7672) is on.

DANE trusts the resolver's AD bit, so it is on only with ``[dns] dnssec = "validating"``; the line
says so when it is off, since mail to DNSSEC-signed domains then goes without the TLSA check.
"""

from __future__ import annotations

from todoku.config import Config

LINES = {
    "en": {
        "on": '  ok  DANE (RFC 7672) on: [dns] dnssec = "validating"; TLSA records of signed '
        "MX hosts are enforced",
        "off": '  --  DANE (RFC 7672) off: [dns] dnssec is not "validating", so TLSA records are '
        "not checked; set it only if the resolver validates DNSSEC",
    },
    "ja": {
        "on": '  ok  DANE (RFC 7672) 有効: [dns] dnssec = "validating"。署名された MX の TLSA '
        "レコードを強制します",
        "off": '  --  DANE (RFC 7672) 無効: [dns] dnssec が "validating" ではないため TLSA '
        "レコードは確認しません。リゾルバが DNSSEC を検証する場合のみ設定してください",
    },
}


def dane_line(config: Config, lang: str = "en") -> str:
    text = LINES.get(lang, LINES["en"])
    return text["on" if config.dnssec == "validating" else "off"] + "\n"
