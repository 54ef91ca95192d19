"""Evidence → reason word, by walking the tables of rules.py."""

from __future__ import annotations

import re

from todoku.bounce.rules import ANY, CODE_RULES, STATUS_RULES, TEXT_RULES

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


def reason_from_status(enhanced: str | None) -> str | None:
    """The reason an RFC 3463 enhanced status code names on its own, or None if too vague."""
    match = _ENHANCED.match((enhanced or "").strip())
    if not match:
        return None
    klass, subject, detail = match.groups()
    if klass == "2":
        return "delivered"
    return STATUS_RULES.get(f"{subject}.{detail}")


def reason_from_text(text: str, phase: str = ANY) -> str | None:
    for rule in TEXT_RULES:
        if rule.phase not in (ANY, phase):
            continue
        if rule.pattern.search(text):
            return rule.reason
    return None


def classify_reply(code: int | None, enhanced: str | None, text: str, phase: str = ANY) -> str:
    """The reason word for one SMTP reply (or a bounce's diagnostic): text first, then the codes.

    The sentence wins over the codes because servers reuse a few codes (550 5.7.1 above all) for
    many different causes, while their wording is specific.
    """
    reason = reason_from_text(text or "", phase)
    if reason:
        return reason
    reason = reason_from_status(enhanced)
    if reason:
        return reason
    if code is not None and code in CODE_RULES:
        return CODE_RULES[code]
    if code is not None and 400 <= code < 500:
        return "onhold"
    return "undefined"
