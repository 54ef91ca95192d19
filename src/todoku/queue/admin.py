"""The outbound queue's administration, as library functions: what ``todoku queue ...`` and
``todoku sendmail`` (``cli/queue.py``) show and decide.

The commands change the queue through the storage interfaces; a running server learns about it
because each command then replaces ``<data_dir>/run/queue.wake``, whose modification time the
runner checks five times a second (a ``stat``), rescanning the queue's due times when it changed.
No socket or signal is needed, and the change takes effect even if the server starts later.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from typing import Any

from todoku.config import Config
from todoku.ingest import HeaderFacts
from todoku.outcome import PHASE_ADMIN, Outcome, Verdict
from todoku.store.api import QueueEntry, RecipientResult
from todoku.store.queue import Queue


def entry_json(entry: QueueEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "sender": entry.sender,
        "size": entry.size,
        "received_at": entry.received_at,
        "next_attempt": entry.next_attempt,
        "attempts": entry.attempts,
        "held": entry.held,
        "delay_warned": entry.delay_warned,
        "last_error": entry.last_error,
        "recipients": [
            {
                "address": r.address,
                "state": r.state,
                "last_reply": r.last_reply,
                "phase": r.phase,
                "code": r.code,
                "enhanced": r.enhanced,
                "remote_mta": r.remote_mta,
                "reason": r.reason,
                "notify": list(r.notify),
                "orcpt": r.orcpt,
            }
            for r in entry.recipients
        ],
    }


# The reason word of a message the administrator took out of the queue (bounce.explain).
ADMINISTRATOR_REASON = "cancelled"


def administrator_results(entry: QueueEntry, hostname: str) -> list[RecipientResult]:
    """Every recipient not yet delivered, failed by the administrator (``queue bounce``,
    ``queue delete --bounce``): decided here, so no remote server and no reply code, and the
    reason that says so in the report the runner then sends."""
    text = f"removed from the queue and returned to the sender by the administrator of {hostname}"
    return [
        RecipientResult.of(
            Outcome(
                r.address,
                Verdict.PERMANENT,
                PHASE_ADMIN,
                None,
                "",
                text,
                reason=ADMINISTRATOR_REASON,
                status="5.0.0",
            )
        )
        for r in entry.recipients
        if r.state == "pending"
    ]


async def return_to_sender(queue: Queue, entry: QueueEntry, hostname: str, now: float) -> int:
    """Fail every recipient not yet delivered as the administrator's decision, release the
    message and make it due now, so the runner sends the report (``queue bounce``, the admin
    pages' "return to sender"); returns how many recipients. The caller wakes the runner."""
    results = administrator_results(entry, hostname)
    await queue.record_results(entry.id, results, now)
    await queue.hold(entry.id, False, now)
    await queue.flush(entry.id, None, now)
    return len(results)


def next_routes(config: Config, entry: QueueEntry) -> list[dict[str, Any]]:
    """Which way each pending recipient domain goes at the next attempt (queue.routing.choose)."""
    from todoku.queue.mtasts import cache_directory, describe_cached
    from todoku.queue.routing import choose

    domains = dict.fromkeys(
        r.address.rpartition("@")[2].lower() for r in entry.recipients if r.state == "pending"
    )
    routes = []
    for domain in domains:
        choice = choose(config.relays, domain, entry.attempts)
        relay = choice.relay
        why = choice.why
        if relay is None and config.delivery.mta_sts:
            policy = describe_cached(cache_directory(config.data_dir), domain, time.time())
            why += f"; {policy}" if policy else ""
        if relay is None and config.dnssec == "validating":
            why += (
                "; DANE (RFC 7672) on: MX hosts with DNSSEC-signed TLSA records get only TLS "
                "that matches them"
            )
        routes.append(
            {
                "domain": domain,
                "route": "relay" if relay is not None else "mx",
                "relay": relay.key if relay is not None else None,
                "why": why,
            }
        )
    return routes


def normalise(raw: bytes, ignore_dots: bool) -> bytes:
    """CRLF line ends; without -i a line of one '.' ends the message (classic sendmail)."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not ignore_dots and b"." in lines:
        lines = lines[: lines.index(b".")]
    body = b"\r\n".join(lines)
    return body + b"\r\n" if body else b""


_ADDRESS_FIELDS = re.compile(
    rb"^(to|cc|bcc)[ \t]*:(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE
)


def header_recipients(header_block: bytes) -> list[str]:
    values = [
        m.group(2).replace(b"\r\n", b" ").decode("utf-8", "replace")
        for m in _ADDRESS_FIELDS.finditer(header_block + b"\r\n")
    ]
    return [address for _, address in email.utils.getaddresses(values) if address]


def drop_bcc(message: bytes) -> bytes:
    head, sep, body = message.partition(b"\r\n\r\n")
    kept = re.sub(rb"(?im)^bcc[ \t]*:.*(?:\r\n[ \t].*)*(?:\r\n|$)", b"", head + b"\r\n")
    return kept.rstrip(b"\r\n") + sep + body if sep else kept


def added_headers(
    config: Config,
    queue_id: str,
    facts: HeaderFacts,
    sender: str,
    full_name: str | None,
    now: float,
) -> bytes:
    date = email.utils.formatdate(now, localtime=True)
    out = (
        f"Received: by {config.hostname} (todoku sendmail, uid {os.getuid()})\r\n"
        f"\tid {queue_id}; {date}\r\n"
    )
    if not facts.has_from and sender:
        out += f"From: {email.utils.formataddr((full_name or '', sender))}\r\n"
    if not facts.has_date:
        out += f"Date: {date}\r\n"
    if not facts.has_message_id:
        out += f"Message-ID: <{queue_id}.{int(now)}@{config.hostname}>\r\n"
    return out.encode("utf-8")
