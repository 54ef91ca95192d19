"""One bounce message in → one Diagnosis per recipient out (the whole pipeline, still pure)."""

from __future__ import annotations

from dataclasses import dataclass

from todoku.bounce.classify import classify_evidence
from todoku.bounce.explain import REASONS, explain_reason
from todoku.bounce.extract import Bounce, Evidence, parse_bounce


@dataclass(frozen=True, slots=True)
class Diagnosis:
    recipient: str
    reason: str
    status: str
    reply_code: int | None
    remote_mta: str
    diagnostic: str
    permanent: bool
    date: str
    cause: str = ""
    remedy: str = ""

    def to_json(self, file: str) -> dict[str, object]:
        return {"file": file, "recipient": self.recipient, "reason": self.reason,
                "status": self.status, "reply_code": self.reply_code,
                "remote_mta": self.remote_mta, "diagnostic": self.diagnostic,
                "permanent": self.permanent, "date": self.date, "cause": self.cause,
                "remedy": self.remedy}


def _permanent(evidence: Evidence, reason: str) -> bool:
    if evidence.action == "delayed":
        return False
    if evidence.status[:1] in ("4", "5"):
        return evidence.status[0] == "5"
    if evidence.reply_code is not None:
        return evidence.reply_code >= 500
    definition = REASONS.get(reason)
    return definition.permanent if definition else True


def diagnose(bounce: Bounce, lang: str = "en", explain: bool = True) -> list[Diagnosis]:
    if not bounce.evidence:
        cause, remedy = explain_reason(bounce.kind if bounce.kind == "notbounce" else "undefined",
                                       lang) if explain else ("", "")
        reason = "notbounce" if bounce.kind == "notbounce" else "undefined"
        return [Diagnosis("", reason, "", None, "", "", False, bounce.date, cause, remedy)]
    out = []
    for evidence in bounce.evidence:
        reason = classify_evidence(bounce.kind, evidence, bounce.subject, bounce.text,
                                   bounce.filter_gateway)
        cause = remedy = ""
        if explain:
            facts = {"recipient": evidence.recipient, "remote_mta": evidence.remote_mta}
            cause, remedy = explain_reason(reason, lang, **facts)
            if evidence.action == "delayed":
                # A warning, not a failure (RFC 3464 §2.3.3): the sender need do nothing yet;
                # the reason says what is holding the message up.
                waiting, nothing_yet = explain_reason("delayed", lang, **facts)
                if reason not in ("expired", "undefined", "onhold"):
                    waiting = f"{waiting} {cause}"
                cause, remedy = waiting, nothing_yet
        out.append(
            Diagnosis(
                recipient=evidence.recipient,
                reason=reason,
                status=evidence.status,
                reply_code=evidence.reply_code,
                remote_mta=evidence.remote_mta,
                diagnostic=evidence.diagnostic,
                permanent=_permanent(evidence, reason) if reason not in (
                    "delivered", "vacation", "feedback") else False,
                date=evidence.date,
                cause=cause,
                remedy=remedy,
            )
        )
    return out


def analyze_bytes(data: bytes, lang: str = "en", explain: bool = False) -> list[Diagnosis]:
    return diagnose(parse_bounce(data), lang, explain)
