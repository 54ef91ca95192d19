"""DMARC (RFC 7489): does the visible From domain stand behind this message, and what does it
ask receivers to do when it does not?

Organisational domain (RFC 7489 §3.2): the Public Suffix List (https://publicsuffix.org), read by
the maintained ``publicsuffixlist`` package, with its private section (``github.io``,
``blogspot.com``...) included, because a name registered under a hosting platform belongs to a
different owner than its neighbour, exactly as under ``co.th``. A hand-kept list of suffixes let
``attacker.co.th`` align with ``example.co.th`` and sent the policy lookup to ``_dmarc.co.th``.

The list changes every week; the package ships a copy that is as old as its release. An operator
who wants a newer one puts it at ``<data_dir>/public_suffix_list.dat`` (``PSL_FILE_NAME``; e.g.
``curl -o DATA_DIR/public_suffix_list.dat https://publicsuffix.org/list/public_suffix_list.dat``)
and restarts: ``use_public_suffix_list`` then reads it instead of the bundled copy.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from publicsuffixlist import PublicSuffixList

from todoku.mailauth.lookup import Lookups

PASS = "pass"
FAIL = "fail"
NONE = "none"
TEMPERROR = "temperror"
PERMERROR = "permerror"

PSL_FILE_NAME = "public_suffix_list.dat"  # in the data directory, when the operator adds one

log = logging.getLogger("todoku.dmarc")
_suffixes: PublicSuffixList | None = None  # loaded on first use, or by use_public_suffix_list


def use_public_suffix_list(path: Path | None) -> str:
    """Read the Public Suffix List from ``path`` when that file exists and looks like the list,
    else the copy bundled with ``publicsuffixlist``; returns which one, for the log. Parsing
    takes about 0.15 s: called at start-up, so that no SMTP session waits for it."""
    global _suffixes
    if path is not None and path.exists():
        try:
            with path.open("rb") as handle:
                loaded = PublicSuffixList(source=handle, only_icann=False)
        except (OSError, UnicodeError, ValueError) as exc:
            log.warning("cannot read %s (%s); using the bundled public suffix list", path, exc)
        else:
            # An empty or truncated download would make every TLD's children align: refuse it.
            if loaded.is_public("co.uk") and loaded.is_public("github.io"):
                _suffixes = loaded
                return str(path)
            log.warning("%s does not look like the public suffix list; using the bundled one", path)
    _suffixes = PublicSuffixList(only_icann=False)
    return "bundled"


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix (the longest matching rule) plus one label; a name that
    is itself a public suffix (or empty) is its own organisational domain."""
    if _suffixes is None:
        use_public_suffix_list(None)
    assert _suffixes is not None
    name = domain.lower().rstrip(".")
    return _suffixes.privatesuffix(name) or name


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
