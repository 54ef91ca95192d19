"""Retry steering: what a remote's reply asks of the queue (the bounce analyzer's reason word).

Rate limits (``toomanyconn``, ``speeding``) pause the destination (queue.delivery); greylisting
retries at the first retry interval; "452 Too many recipients" sends the rest at once in a
transaction of their own; a temporary reply whose reason is a permanent policy block stops the
retries after ``STOP_EARLY_AFTER`` attempts. A temporary condition never bounces by itself
otherwise; only max_lifetime does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from todoku.outcome import Outcome, Verdict

log = logging.getLogger("todoku.queue")

RATE_LIMIT_REASONS = frozenset({"toomanyconn", "speeding"})
GREYLIST_REASONS = frozenset({"greylisted", "greylisting"})
# The analyzer's taxonomy (Sisimai's) has no word for greylisting, and files such replies under
# securityerror or blocked; the remote's own words say it.
_GREYLIST_TEXT = re.compile(r"gr[ae]y[\s-]?list", re.IGNORECASE)
# Reasons that are permanent by nature: a temporary reply with one of these is retried only a
# few times, since waiting will not change the remote's policy.
POLICY_BLOCK_REASONS = frozenset(
    {
        "rejected",
        "policyviolation",
        "authfailure",
        "requireptr",
        "norelaying",
        "notaccept",
        "userunknown",
        "hostunknown",
    }
)
STOP_EARLY_AFTER = 3


def is_greylisting(attempt: Outcome) -> bool:
    """The remote asked us to come back soon with the same message (RFC 6647)."""
    return attempt.reason in GREYLIST_REASONS or bool(_GREYLIST_TEXT.search(attempt.text))


def judge(
    code: int | None, enhanced: str, text: str, phase: str = ""
) -> tuple[str, tuple[str, ...]]:
    """The bounce analyzer's reason word for a remote's reply, and the evidence that decided it,
    read with the SMTP command it answered (issue 13: "452 4.5.3" at RCPT is a recipient-count
    limit, not a rate limit)."""
    from todoku.bounce.classify import judge_reply

    try:
        verdict = judge_reply(code, enhanced or None, text, phase.replace("-", " "))
    except Exception:
        log.exception("bounce classifier failed on %r %r %r", code, enhanced, text)
        return "undefined", ()
    return verdict.reason, verdict.evidence


def reason_for(attempt: Outcome) -> tuple[str, tuple[str, ...]]:
    """The reason word of a failed attempt and its evidence. A reason the attempt already
    carries wins (the relay-login failure, DNS and routing answers, expiry: decided here, with
    no reply to read). Without any reply the remote never spoke: refused, timed out or closed is
    a network problem (RFC 3463 X.4.x), never a policy such as a blocklist, whatever our own
    words say; a failed TLS handshake is STARTTLS trouble. A reply is read by the analyzer
    with its phase."""
    if attempt.reason:
        return attempt.reason, attempt.evidence
    if attempt.code is None:
        if attempt.phase in ("tls", "starttls"):
            return "failedstarttls", (f"no reply: the TLS step ({attempt.phase}) failed",)
        return "networkerror", (f"no reply at {attempt.phase}: the remote never answered",)
    return judge(attempt.code, attempt.enhanced, attempt.text, attempt.phase)


def is_recipient_limit(attempt: Outcome) -> bool:
    """RFC 5321 §4.5.3.1.10: "452 Too many recipients" (RFC 3463 4.5.3) at RCPT limits one
    transaction; the recipients it refused go in the next one, without waiting."""
    return (
        attempt.verdict is Verdict.TEMPORARY
        and attempt.phase == "rcpt"
        and (
            attempt.enhanced == "4.5.3"
            or (attempt.code == 452 and not attempt.enhanced and attempt.reason == "exceedlimit")
        )
    )


def classified(attempt: Outcome, attempts_so_far: int = 0) -> Outcome:
    """``attempt`` with its reason word; a temporary policy refusal repeated ``STOP_EARLY_AFTER``
    times becomes permanent."""
    if attempt.verdict is Verdict.DELIVERED:
        return replace(attempt, reason="delivered")
    reason, evidence = reason_for(attempt)
    attempt = replace(attempt, reason=reason, evidence=evidence)
    if (
        attempt.verdict is Verdict.TEMPORARY
        and attempt.code is not None
        and reason in POLICY_BLOCK_REASONS
        and attempts_so_far >= STOP_EARLY_AFTER
    ):
        # The remote keeps refusing on policy grounds that waiting will not change.
        attempt = replace(
            attempt,
            verdict=Verdict.PERMANENT,
            text=f"{attempt.text} (given up after {attempts_so_far} attempts)",
        )
    return attempt
