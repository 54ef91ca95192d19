"""Evidence → reason word, by walking the tables of rules.py."""

from __future__ import annotations

import re

from todoku.bounce.extract import Evidence
from todoku.bounce.rules import (
    ANY,
    CODE_RULES,
    DECISIVE_STATUS,
    STATUS_RULES,
    TEXT_RULES,
    USER_UNKNOWN_WITHOUT_ADDRESS,
)

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
    text = text.lower()
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


def classify_evidence(kind: str, evidence: Evidence, subject: str = "", report: str = "",
                      filter_gateway: bool = False) -> str:
    """The reason word for one recipient of a parsed bounce.

    ``filter_gateway``: the bounce was written by a content-filtering gateway (rules.FILTER_GATEWAY).
    """
    if kind in ("feedback", "vacation", "notbounce"):
        return kind
    status = evidence.status
    action = evidence.action
    if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
        return "delivered"
    phase = evidence.phase or _phase_of(evidence.context)
    decisive = _decisive(status)
    if decisive:
        return decisive
    # The remote server's own words are the best evidence; the report around them comes next
    # (it carries the reporting MTA's judgement: "retry timeout exceeded", "loops back").
    reason = None
    for text in (evidence.diagnostic, evidence.context):
        reason = reason_from_text(text, phase) if text else None
        if reason:
            break
    if reason is None and action == "delayed":
        reason = "expired"
    if reason is None:
        reason = reason_from_status(status)
    # The rest of the report and the subject are read last: they mix boilerplate with the cause.
    for text in (report, subject):
        if reason is None and text:
            reason = reason_from_text(text, phase)
    if reason is None:
        code = evidence.reply_code
        if code is not None and code in CODE_RULES:
            reason = CODE_RULES[code]
        else:
            reason = "onhold" if (code or status) else "undefined"
    if reason in ("userunknown", "hostunknown", "suspend") and phase == "mail":
        # Refused in reply to MAIL FROM: the unknown address is the sender's, not the recipient's.
        return "rejected"
    if reason == "userunknown" and not phase:
        phase = _phase_of(report)
    if (reason == "userunknown" and phase == "data" and not status.endswith(".1.1")
            and ".1.1" not in evidence.diagnostic and "recipient" not in evidence.diagnostic.lower()):
        # The recipient was accepted at RCPT TO and refused only after the content was seen:
        # a filter of the recipient or the site, not a missing mailbox.
        return "filtered"
    if reason == "userunknown" and phase != "rcpt" and _refused_after_acceptance(
            evidence, report, filter_gateway):
        return "filtered"
    return reason


# RFC 3463 subjects that a refusal of a non-existent mailbox does not use: X.2.x mailbox status,
# X.3.x mail system status, X.7.x security or policy status (an unknown address is X.1.x).
_NOT_ADDRESS_SUBJECTS = ("2", "3", "7")


def _refused_after_acceptance(evidence: Evidence, report: str, filter_gateway: bool) -> bool:
    """True when a "user unknown" was the verdict of a filter after the recipient was accepted.

    Three signs, none of which a plain reply to RCPT TO shows: the reply quotes no address
    ("550 : User unknown", the shape of a refusal of the content); the enhanced code names a
    mailbox, system or policy problem rather than an address one, and nothing in the report ties
    the refusal to RCPT TO; or the report comes from a filtering gateway, which accepts every
    recipient itself and passes on its inner server's refusal afterwards (unless that refusal
    carries an address status, X.1.x).
    """
    diagnostic = evidence.diagnostic.lower()
    if USER_UNKNOWN_WITHOUT_ADDRESS.search(diagnostic):
        return True
    match = _ENHANCED.match(evidence.status)
    subject = match.group(2) if match else ""
    if filter_gateway and subject != "1":
        return True
    return (subject in _NOT_ADDRESS_SUBJECTS and "rcpt" not in report.lower()
            and "rcpt" not in diagnostic)


def _decisive(status: str) -> str | None:
    match = _ENHANCED.match(status)
    if not match:
        return None
    return DECISIVE_STATUS.get(f"{match.group(2)}.{match.group(3)}")


def _phase_of(text: str) -> str:
    from todoku.bounce.extract import _phase_in

    return _phase_in(text) if text else ""
