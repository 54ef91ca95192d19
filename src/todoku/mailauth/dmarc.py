"""DMARC (RFC 7489): does the visible From domain stand behind this message, and what does it
ask receivers to do when it does not?

Organisational domain (RFC 7489 §3.2) without shipping the whole Public Suffix List: the public
suffix of a name is its last label, unless its last two labels are in ``MULTI_LABEL_SUFFIXES``
(registries that sell names one level down, e.g. ``co.uk``, ``co.jp``, ``com.au``); the
organisational domain is the public suffix plus one label. This is right for the gTLDs and for
most ccTLDs, and errs toward *relaxed* alignment failing (never passing wrongly across
registrants) only for the private suffixes it does not know, such as hosting platforms.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from todoku.mailauth.lookup import Lookups

PASS = "pass"
FAIL = "fail"
NONE = "none"
TEMPERROR = "temperror"
PERMERROR = "permerror"

MULTI_LABEL_SUFFIXES = frozenset(
    ["co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "sch.uk", "nhs.uk", "co.jp", "ne.jp", "or.jp", "ac.jp", "ad.jp", "ed.jp", "go.jp", "gr.jp", "lg.jp", "com.au", "net.au", "org.au", "edu.au", "gov.au", "asn.au", "id.au", "co.nz", "net.nz", "org.nz", "ac.nz", "govt.nz", "com.br", "net.br", "org.br", "gov.br", "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn", "com.tw", "net.tw", "org.tw", "edu.tw", "idv.tw", "co.kr", "or.kr", "ne.kr", "ac.kr", "go.kr", "com.hk", "net.hk", "org.hk", "edu.hk", "com.sg", "net.sg", "org.sg", "edu.sg", "co.in", "net.in", "org.in", "ac.in", "gov.in", "co.za", "org.za", "ac.za", "gov.za", "com.mx", "org.mx", "gob.mx", "com.ar", "com.tr", "com.ua", "com.pl", "co.il", "ac.il", "co.id", "or.id", "ac.id", "com.my", "com.ph", "com.vn"]
)


def organizational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) <= 2:
        return ".".join(labels)
    suffix_labels = 2 if ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES else 1
    return ".".join(labels[-(suffix_labels + 1) :])


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """RFC 7489 §3.1: strict = same name; relaxed = same organisational domain."""
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str  # none, quarantine, reject
    subdomain_policy: str
    percent: int
    adkim: str  # "r" or "s"
    aspf: str
    rua: tuple[str, ...]
    text: str


_POLICIES = ("none", "quarantine", "reject")


def parse_record(text: str) -> DmarcRecord | None:
    """None when ``text`` is not a usable DMARC record (RFC 7489 §6.6.3: then there is none)."""
    parts = [p.strip() for p in text.split(";")]
    if not parts or not re.fullmatch(r"v\s*=\s*DMARC1", parts[0]):
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    policy = tags.get("p", "").lower()
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    if policy not in _POLICIES:
        # RFC 7489 §6.6.3: an invalid p= with a valid rua= is treated as p=none.
        if not rua:
            return None
        policy = "none"
    subdomain = tags.get("sp", policy).lower()
    if subdomain not in _POLICIES:
        subdomain = policy
    try:
        percent = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        percent = 100
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return DmarcRecord(policy, subdomain, percent, adkim, aspf, rua, text)


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # pass, fail, none, temperror, permerror
    from_domain: str
    policy: str  # what the domain asks for this message: none, quarantine, reject
    applied: str  # what we do after pct sampling: none, quarantine, reject
    record: DmarcRecord | None
    failed_checks: str = ""  # e.g. "SPF fail for a.test, DKIM none" for the reply text


async def fetch_record(lookups: Lookups, from_domain: str) -> tuple[str, DmarcRecord | None, bool]:
    """(result word, record, found at the organisational domain). RFC 7489 §6.6.3."""
    for candidate, at_org in ((from_domain, False), (organizational_domain(from_domain), True)):
        if at_org and candidate == from_domain:
            break
        answer = await lookups.txt(f"_dmarc.{candidate}")
        if answer.status.is_temporary:
            return TEMPERROR, None, at_org
        records = [r for r in (parse_record(t) for t in answer.records) if r is not None]
        if len(records) == 1:
            return PASS, records[0], at_org
        # none found, or more than one (RFC 7489 §6.6.3 step 5: then no DMARC applies here)
    return NONE, None, False


def _downgrade(policy: str) -> str:
    return {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")


async def evaluate(
    lookups: Lookups,
    from_domain: str | None,
    spf_result: str,
    spf_domain: str,
    dkim_passes: list[str],
    describe_failure: str = "",
    sample: Callable[[], float] = random.random,
) -> DmarcResult:
    """RFC 7489 §6.6: DMARC passes if SPF or DKIM passed for an identifier aligned with From.

    ``dkim_passes`` holds the d= domains of the signatures that verified. ``sample`` returns a
    number in [0, 1) for pct= sampling (§6.6.4); tests pass a fixed one.
    """
    if not from_domain:
        return DmarcResult(PERMERROR, "", "none", "none", None, "no single From domain")
    word, record, at_org = await fetch_record(lookups, from_domain)
    if record is None:
        return DmarcResult(word, from_domain, "none", "none", None)
    policy = record.subdomain_policy if at_org else record.policy
    spf_ok = spf_result == "pass" and aligned(spf_domain, from_domain, record.aspf)
    dkim_ok = any(aligned(d, from_domain, record.adkim) for d in dkim_passes)
    if spf_ok or dkim_ok:
        return DmarcResult(PASS, from_domain, policy, "none", record)
    applied = policy
    if policy != "none" and sample() * 100 >= record.percent:
        applied = _downgrade(policy)  # RFC 7489 §6.6.4: outside the sample, the next lower policy
    return DmarcResult(FAIL, from_domain, policy, applied, record, describe_failure)
