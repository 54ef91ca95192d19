"""What the queue pages show, computed from queue entries: no I/O, no HTML.

One row per message (age, sender, recipients, state, next try, last reply and its reason in
plain words); the filters (recipient domain, reason word, state); and a message's story: every
attempt, the explanation of each recipient's outcome in en or ja (the bounce analyzer's own
words, as in the reports senders get), and what todoku does next and when (the queue's own
schedule: next try, delay warning, expiry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from todoku.bounce.explain import explain_reason, retry_note
from todoku.dsn.durations import describe_duration
from todoku.queue.schedule import Schedule
from todoku.store.api import QueueEntry, QueueRecipient
from todoku.store.queue import AttemptRecord

STATES = ("waiting", "deferred", "held", "finishing")
MAX_ROWS = 500  # rows on one queue page; the filters narrow a longer queue


def when(timestamp: float) -> str:
    """A time as every page shows it: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def relative(seconds: float, lang: str) -> str:
    """ "in 5 minutes" / "5 minutes ago" (ja: 5分後 / 5分前)."""
    span = describe_duration(abs(seconds), lang)
    if lang == "ja":
        return f"{span}後" if seconds >= 0 else f"{span}前"
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def state_of(entry: QueueEntry) -> str:
    """held (by an administrator), deferred (tried, will try again), waiting (not tried yet),
    finishing (every recipient final; the report to the sender is still owed)."""
    if entry.held:
        return "held"
    if not any(r.state == "pending" for r in entry.recipients):
        return "finishing"
    return "deferred" if entry.attempts > 0 else "waiting"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _latest(entry: QueueEntry) -> QueueRecipient | None:
    """The recipient whose last result says most: a pending one with a reply, else any."""
    with_reply = [r for r in entry.recipients if r.last_reply or r.reason]
    pending = [r for r in with_reply if r.state == "pending"]
    chosen = pending or with_reply
    return max(chosen, key=lambda r: r.updated_at) if chosen else None


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: str
    age: float  # seconds since it was received
    sender: str
    recipients: tuple[str, ...]  # recipients still pending first
    state: str
    next_try: float | None  # None: held, or nothing left to try
    last_reply: str
    reason: str  # the analyzer's reason word, "" when there is none yet
    cause: str  # the reason in plain words, in the page's language


def row_of(entry: QueueEntry, now: float, lang: str) -> QueueRow:
    latest = _latest(entry)
    reason = latest.reason if latest is not None else ""
    last_reply = latest.last_reply if latest is not None else entry.last_error
    cause = ""
    if reason:
        cause, _ = explain_reason(
            reason, lang, recipient=latest.address if latest is not None else ""
        )
    state = state_of(entry)
    ordered = sorted(entry.recipients, key=lambda r: r.state != "pending")
    return QueueRow(
        id=entry.id,
        age=max(0.0, now - entry.received_at),
        sender=entry.sender,
        recipients=tuple(r.address for r in ordered),
        state=state,
        next_try=entry.next_attempt if state in ("waiting", "deferred") else None,
        last_reply=last_reply,
        reason=reason,
        cause=cause,
    )


@dataclass(frozen=True, slots=True)
class Filters:
    domain: str = ""
    reason: str = ""
    state: str = ""

    def matches(self, entry: QueueEntry) -> bool:
        if self.state and state_of(entry) != self.state:
            return False
        if self.domain and not any(domain_of(r.address) == self.domain for r in entry.recipients):
            return False
        return not self.reason or any(r.reason == self.reason for r in entry.recipients)


def queue_rows(
    entries: Iterable[QueueEntry], filters: Filters, now: float, lang: str
) -> tuple[list[QueueRow], int]:
    """The rows that match, oldest first, at most ``MAX_ROWS``; and how many matched in all."""
    matching = sorted((e for e in entries if filters.matches(e)), key=lambda e: e.received_at)
    return [row_of(e, now, lang) for e in matching[:MAX_ROWS]], len(matching)


def reasons_in(entries: Iterable[QueueEntry]) -> list[str]:
    """The reason words present in the queue, for the reason filter's choices."""
    return sorted({r.reason for e in entries for r in e.recipients if r.reason})


# ------------------------------------------------------------------------ one message's story


@dataclass(frozen=True, slots=True)
class AttemptRow:
    time: float
    recipient: str
    route: str
    remote_host: str
    phase: str
    reply: str
    state: str
    reason: str


def attempt_rows(
    history: Sequence[AttemptRecord], route_of: Callable[[str, int], str]
) -> list[AttemptRow]:
    """Every recorded result, in order. ``route_of(domain, failed_before)`` names the way the
    queue chose for that attempt (relay or MX), from the attempt's number: attempts are told
    apart by their start time."""
    starts = sorted({row.time for row in history})
    number = {start: index for index, start in enumerate(starts)}
    out = []
    for row in history:
        code = str(row.code) if row.code else ""
        reply = " ".join(part for part in (code, row.enhanced, row.text) if part)
        out.append(
            AttemptRow(
                time=row.time,
                recipient=row.recipient,
                route=route_of(row.domain or domain_of(row.recipient), number[row.time]),
                remote_host=row.remote_mta,
                phase=row.phase,
                reply=reply,
                state=row.state,
                reason=row.reason,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Explanation:
    recipient: str
    state: str
    reason: str
    cause: str
    remedy: str


def explanations(entry: QueueEntry, lang: str) -> list[Explanation]:
    """Each recipient with a result: the cause and the remedy in plain words, and whether the
    message is still retried for it (the same sentences the delay warning and the bounce say)."""
    out = []
    for r in entry.recipients:
        if not r.reason or r.state == "delivered":
            continue
        facts = {"recipient": r.address, "remote_mta": r.remote_mta, "diagnostic": r.last_reply}
        cause, remedy = explain_reason(r.reason, lang, **facts)
        action = "delayed" if r.state == "pending" else "failed"
        out.append(
            Explanation(
                r.address, r.state, r.reason, cause, remedy + retry_note(r.reason, lang, action)
            )
        )
    return out


_NEXT = {
    "held": (
        "Held by an administrator: todoku does not try it until it is released.",
        "管理者が保留にしています。保留を解除するまで送信しません。",
    ),
    "next": ("Next try at {at} ({rel}).", "次の再送は {at}（{rel}）です。"),
    "due": ("Due now: the next try starts at once.", "再送の時刻です。すぐに送信します。"),
    "warn": (
        "If it is still not delivered at {at} ({rel}), the sender is told that it is delayed.",
        "{at}（{rel}）になっても届いていなければ、差出人に遅延を知らせます。",
    ),
    "warned": (
        "The sender has been told that it is delayed.",
        "差出人には遅延を知らせました。",
    ),
    "expire": (
        (
            "If it is still not delivered at {at} ({rel}, {lifetime} after it arrived), todoku "
            "gives up and returns it to the sender with the reason."
        ),
        "{at}（{rel}、受付から {lifetime}）になっても届かなければ、あきらめて理由を添えて差出人に返送します。",
    ),
    "finishing": (
        (
            "Every recipient has a final result: the report to the sender goes out at the next "
            "run, then the message leaves the queue."
        ),
        "すべての宛先の結果が確定しました。次の処理で差出人に通知を送り、キューから削除します。",
    ),
}


def _say(key: str, lang: str, **facts: str) -> str:
    en, ja = _NEXT[key]
    return (ja if lang == "ja" else en).format(**facts)


def next_steps(entry: QueueEntry, schedule: Schedule, now: float, lang: str) -> list[str]:
    """What todoku does next with this message, and when, from the queue's schedule."""
    state = state_of(entry)
    if state == "finishing":
        return [_say("finishing", lang)]
    steps = []
    if state == "held":
        steps.append(_say("held", lang))
    elif entry.next_attempt <= now:
        steps.append(_say("due", lang))
    else:
        at = entry.next_attempt
        steps.append(_say("next", lang, at=when(at), rel=relative(at - now, lang)))
    warn_at = schedule.delay_warning_at(entry.received_at)
    expires = schedule.expires_at(entry.received_at)
    if entry.delay_warned:
        steps.append(_say("warned", lang))
    elif warn_at is not None and warn_at < expires:
        steps.append(_say("warn", lang, at=when(warn_at), rel=relative(warn_at - now, lang)))
    steps.append(
        _say(
            "expire",
            lang,
            at=when(expires),
            rel=relative(expires - now, lang),
            lifetime=describe_duration(schedule.max_lifetime, lang),
        )
    )
    return steps
