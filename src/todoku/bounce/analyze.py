"""One bounce message in → one Diagnosis per recipient out (the whole pipeline, still pure).

Three facts about the outcome are kept apart (issue 13 item 3):

* ``action``, what became of the message for this recipient, in RFC 3464 §2.3.3's words:
  failed (returned: nothing retries it), delayed (still being retried), delivered, relayed,
  expanded. From the DSN's Action field; for a report without one, from its wording
  (extract.report_action): a returned message is failed, a delay warning delayed. An auto-reply
  or a complaint is about a delivered message; "" when the message is no report at all.
* ``permanent``: the message will not be retried, ``action == "failed"``. The status class does
  not decide it: a returned message is never "still being retried" (todoku's own give-up after
  max_lifetime is "Action: failed" with "Status: 4.4.7"; a mailbox full is 4.2.2 or 5.2.2).
* ``hard``: sending the same returned message again later would fail the same way, read from
  the reason (HARD_REASONS): the address or domain does not exist or takes no mail, the sender or
  the message itself was refused; False for any action but failed. A full mailbox, a rate limit, a block of the sending server, a network or remote
  fault pass with time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from todoku.bounce.classify import judge_evidence
from todoku.bounce.explain import REASONS, explain_reason, retry_note
from todoku.bounce.extract import (
    ACTIONS,
    KIND_FEEDBACK,
    KIND_NOTBOUNCE,
    KIND_VACATION,
    Bounce,
    Evidence,
    parse_bounce,
)
from todoku.outcome import HARD_REASONS

# Reports about a message that arrived: an auto-reply, a complaint, a success notice.
_ABOUT_DELIVERED = frozenset({"delivered", "vacation", "feedback"})


@dataclass(frozen=True, slots=True)
class Diagnosis:
    recipient: str
    reason: str
    status: str
    reply_code: int | None
    remote_mta: str
    diagnostic: str
    permanent: bool  # the message will not be retried: action == "failed"
    date: str
    cause: str = ""
    remedy: str = ""
    action: str = ""  # failed, delayed, delivered, relayed, expanded; "" for no report
    hard: bool = False  # sending the same message again would fail the same way
    evidence: tuple[str, ...] = ()  # what decided the reason (the classifier's words)

    def to_json(self, file: str) -> dict[str, object]:
        """The file, then every field in order (what ``--json`` writes).

        The fields' values as they are (strings, numbers, booleans, a tuple of strings), not
        dataclasses.asdict(), which copies every value recursively: for the corpus's 551
        diagnoses 8.2 ms against 0.4 ms (best of 9, CPU time), two thirds of writing them as
        JSON lines."""
        out: dict[str, object] = {"file": file}
        for name in _FIELD_NAMES:
            out[name] = getattr(self, name)
        return out


_FIELD_NAMES = tuple(field.name for field in fields(Diagnosis))


def outcome_action(kind: str, evidence: Evidence, reason: str) -> str:
    """The action for one recipient (see the module's docstring)."""
    if kind == KIND_NOTBOUNCE:
        return ""
    if kind in (KIND_VACATION, KIND_FEEDBACK) or reason in ("vacation", "feedback"):
        return "delivered"
    if evidence.action in ACTIONS:
        return evidence.action
    return "delivered" if reason == "delivered" else "failed"


def explanation(reason: str, lang: str, action: str, **facts: str) -> tuple[str, str]:
    """(cause, remedy) for one recipient, agreeing with the report's ``action``: a delay warning
    says that the message is still being retried and what holds it up; a returned message says
    that nothing retries it and whether sending it again would fail the same way (``hard``).
    The same words for ``todoku explain`` and for the reports todoku writes (dsn.compose)."""
    cause, remedy = explain_reason(reason, lang, **facts)
    if action == "delayed":
        # A warning, not a failure (RFC 3464 §2.3.3): the sender need do nothing yet;
        # the reason says what is holding the message up.
        waiting, nothing_yet = explain_reason("delayed", lang, **facts)
        if reason not in ("expired", "undefined", "onhold", "delayed"):
            waiting = f"{waiting} {cause}"
        return waiting, nothing_yet
    if reason not in _ABOUT_DELIVERED:
        remedy += retry_note(reason, lang, action, action == "failed" and reason in HARD_REASONS)
    return cause, remedy


def _judge(bounce: Bounce, evidence: Evidence) -> tuple[str, tuple[str, ...]]:
    """(reason, what decided it); a classifier failure reads as "undefined" rather than stopping
    a run over many files."""
    if evidence.stated_reason in REASONS:
        # todoku's own report: the word its text explains, decided when it knew (the reply and
        # its SMTP phase, the DNS answer, the expiry, the administrator's command).
        return evidence.stated_reason, (f"stated by the report: {evidence.stated_reason}",)
    try:
        verdict = judge_evidence(
            bounce.kind, evidence, bounce.subject, bounce.text, bounce.filter_gateway
        )
    except Exception as error:  # noqa: BLE001 - analyze never raises
        return "undefined", (f"classification failed: {type(error).__name__}",)
    return verdict.reason, tuple(verdict.evidence)


def diagnose(bounce: Bounce, lang: str = "en", explain: bool = True) -> list[Diagnosis]:
    if not bounce.evidence:
        reason = "notbounce" if bounce.kind == KIND_NOTBOUNCE else "undefined"
        cause, remedy = explain_reason(reason, lang) if explain else ("", "")
        return [
            Diagnosis(
                "",
                reason,
                "",
                None,
                "",
                "",
                False,
                bounce.date,
                cause,
                remedy,
                evidence=bounce.defects,
            )
        ]
    out = []
    for evidence in bounce.evidence:
        reason, decided_by = _judge(bounce, evidence)
        action = outcome_action(bounce.kind, evidence, reason)
        hard = action == "failed" and reason in HARD_REASONS
        cause = remedy = ""
        if explain:
            facts = {"recipient": evidence.recipient, "remote_mta": evidence.remote_mta}
            cause, remedy = explanation(reason, lang, action, **facts)
        out.append(
            Diagnosis(
                recipient=evidence.recipient,
                reason=reason,
                status=evidence.status,
                reply_code=evidence.reply_code,
                remote_mta=evidence.remote_mta,
                diagnostic=evidence.diagnostic,
                permanent=action == "failed",
                date=evidence.date,
                cause=cause,
                remedy=remedy,
                action=action,
                hard=hard,
                evidence=decided_by,
            )
        )
    return out


def analyze_bytes(data: bytes, lang: str = "en", explain: bool = False) -> list[Diagnosis]:
    return diagnose(parse_bounce(data), lang, explain)
