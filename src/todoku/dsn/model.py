"""What a report says, before it becomes MIME."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from todoku.outcome import Outcome


class ReportKind(enum.Enum):
    FAILURE = "failure"  # permanent failure or expiry: the message is returned
    DELAY = "delay"  # still trying (RFC 3464 Action: delayed)
    SUCCESS = "success"  # NOTIFY=SUCCESS and the next hop offered no DSN (Action: relayed)


@dataclass(frozen=True, slots=True)
class RecipientReport:
    final_recipient: str
    original_recipient: str | None  # ORCPT "rfc822;addr", RFC 3461 §4.2
    action: str  # RFC 3464 §2.3.3: failed, delayed, delivered, relayed, expanded
    status: str  # RFC 3463
    remote_mta: str = ""  # host name or [address]
    diagnostic: str = ""  # "smtp; 550 5.1.1 ..." (RFC 3464 §2.3.6)
    last_attempt: float | None = None
    will_retry_until: float | None = None
    reason: str = ""  # the bounce analyzer's word, for the human-readable part
    detail: str = ""  # our own words when there was no remote reply (DNS, connect, expiry)

    @classmethod
    def of(
        cls,
        outcome: Outcome,
        action: str,
        *,
        original_recipient: str | None = None,
        last_attempt: float | None = None,
        will_retry_until: float | None = None,
    ) -> RecipientReport:
        """The report's lines for one recipient's outcome: every fact is the outcome's, the
        ``action`` is the report's (a success report says "relayed", RFC 3464 §2.3.3)."""
        default = "4.0.0" if action == "delayed" else "5.0.0"
        return cls(
            final_recipient=outcome.recipient,
            original_recipient=original_recipient,
            action=action,
            status=outcome.status or default,
            remote_mta=outcome.remote_mta,
            diagnostic=outcome.diagnostic,
            last_attempt=last_attempt,
            will_retry_until=will_retry_until,
            reason=outcome.reason,
            detail=outcome.text or outcome.note,
        )


@dataclass(frozen=True, slots=True)
class Report:
    kind: ReportKind
    reporting_mta: str  # our hostname
    to: str  # the envelope sender of the original message
    queue_id: str
    arrival_date: float
    recipients: tuple[RecipientReport, ...]
    original: bytes  # the whole original message, or only its header block (RET=HDRS)
    headers_only: bool
    lang: str = "en"
    envid: str | None = None
    original_subject: str = ""
    elapsed: float = 0.0  # for delay reports: how long we have tried
    lifetime: float = 0.0  # max_lifetime, for "until the message is 5 days old"
    # The fallback when the full report could not be composed (dsn.compose.plain): nothing
    # copied from the original or from outside, and the text says the original is not attached.
    plain: bool = False
