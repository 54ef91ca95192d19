"""Nearest well-known mail domain for a likely typo (gmial.com → gmail.com, yaho.co.jp → yahoo.co.jp)."""

from __future__ import annotations

# Domains that most people's correspondents use; a typo of one of these is far likelier than a
# real, different domain one letter away. Japanese carriers and providers are included because
# their users meet these bounces most.
WELL_KNOWN_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.jp",
    "ymail.com",
    "outlook.com",
    "outlook.jp",
    "hotmail.com",
    "hotmail.co.jp",
    "live.com",
    "live.jp",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "mail.ru",
    "yandex.ru",
    "proton.me",
    "protonmail.com",
    "zoho.com",
    "qq.com",
    "163.com",
    "naver.com",
    "docomo.ne.jp",
    "ezweb.ne.jp",
    "au.com",
    "softbank.ne.jp",
    "i.softbank.jp",
    "ymobile.ne.jp",
    "rakuten.jp",
    "nifty.com",
    "biglobe.ne.jp",
    "ocn.ne.jp",
    "so-net.ne.jp",
    "plala.or.jp",
    "dion.ne.jp",
    "excite.co.jp",
    "jcom.home.ne.jp",
)


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, stopping early past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def suggest_domain(domain: str) -> str | None:
    """The well-known domain ``domain`` is probably a typo of, or None (also None for an exact hit)."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or domain in WELL_KNOWN_DOMAINS:
        return None
    # One edit for short names, two for longer ones: "gmial.com" is 1 transposition away,
    # "yhaoo.co.jp" 1, "docomo.ne.pj" 1; "hotmial.co.jp" 1.
    limit = 1 if len(domain) <= 8 else 2
    letters = set(domain)
    best: tuple[int, str] | None = None
    for known in WELL_KNOWN_DOMAINS:
        # Each edit adds at most one letter to the set of letters and removes at most one, so
        # names whose letters differ by more than 2 per allowed edit are too far: skip them
        # before the quadratic distance.
        if len(letters.symmetric_difference(known)) > 2 * limit:
            continue
        d = _distance(domain, known, limit)
        if d <= limit and (best is None or d < best[0]):
            best = (d, known)
    return best[1] if best else None
