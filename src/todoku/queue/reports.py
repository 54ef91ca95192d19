"""The reports the queue owes senders: failures (bounces), delay warnings and success reports
(RFC 3464, composed by ``dsn.compose``), and their delivery to a local mailbox or the queue.

A report goes to the envelope sender, never for a report (null sender, RFC 3461 §6.2), and only
for what each recipient's NOTIFY asks (§4.1). A local sender nobody receives (cron's
``root@<domain>``) gets its report redirected to postmaster. A report that cannot be composed
with the original becomes a plain one (``dsn.compose.compose_safely``) rather than an endless
retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from todoku.dsn.compose import compose_safely, original_subject
from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.ingest import HEADER_SCAN_LIMIT
from todoku.queue.model import DELIVERED, FAILED
from todoku.queue.schedule import Schedule
from todoku.store.api import (
    IncomingMessage,
    QueueEntry,
    QueueRecipient,
    RemoteRecipient,
    SpooledBlob,
)
from todoku.store.backend import Storage

log = logging.getLogger("todoku.queue")

MAX_RETURNED_SIZE = 10 * 1024 * 1024  # larger originals come back as headers only


class Reporter:
    def __init__(
        self,
        storage: Storage,
        schedule: Schedule,
        *,
        hostname: str,
        lang: str,
        local_mailboxes: Callable[[str], Awaitable[tuple[str, ...] | None]],
    ) -> None:
        self.queue = storage.queue
        self.blobs = storage.blobs
        self.intake = storage.intake  # a report is stored like any accepted message
        self.schedule = schedule
        self.hostname = hostname
        self.lang = lang
        self.local_mailboxes = local_mailboxes

    async def final(self, entry: QueueEntry, unreported: list[QueueRecipient], now: float) -> None:
        """The failure and success reports owed for these final recipients."""
        failed = [r for r in unreported if r.state == FAILED and wants(r, "FAILURE")]
        succeeded = [r for r in unreported if r.state == DELIVERED and "SUCCESS" in r.notify]
        if entry.sender:  # RFC 3461 §6.2: never a report for a report (null sender)
            if failed:
                await self.send(entry, ReportKind.FAILURE, failed, now)
            if succeeded:
                await self.send(entry, ReportKind.SUCCESS, succeeded, now)

    async def delay(self, entry: QueueEntry, pending: list[QueueRecipient], now: float) -> None:
        """The delay warning, once per entry (marked whether or not anyone wants it)."""
        wanted = [r for r in pending if wants(r, "DELAY")]
        if entry.sender and wanted:
            await self.send(entry, ReportKind.DELAY, wanted, now)
        await self.queue.mark_delay_warned(entry.id)

    async def send(
        self, entry: QueueEntry, kind: ReportKind, recipients: list[QueueRecipient], now: float
    ) -> None:
        def read() -> tuple[bytes, str]:
            original = self._original(entry)
            return original, original_subject(original)  # bounded and linear (dsn.subject)

        original, subject = await asyncio.to_thread(read)
        headers_only = (entry.ret or "").upper() == "HDRS" or entry.size > MAX_RETURNED_SIZE
        action = {
            ReportKind.FAILURE: "failed",
            ReportKind.DELAY: "delayed",
            ReportKind.SUCCESS: "relayed",
        }[kind]
        expires = self.schedule.expires_at(entry.received_at)
        report = Report(
            kind=kind,
            reporting_mta=self.hostname,
            to=entry.sender,
            queue_id=entry.id,
            arrival_date=entry.received_at,
            recipients=tuple(
                RecipientReport.of(
                    r.outcome,
                    action,
                    original_recipient=r.orcpt,
                    last_attempt=r.updated_at or None,
                    will_retry_until=expires if kind is ReportKind.DELAY else None,
                )
                for r in recipients
            ),
            original=original,
            headers_only=headers_only,
            lang=self.lang,
            envid=entry.envid,
            original_subject=subject,
            elapsed=now - entry.received_at,
            lifetime=self.schedule.max_lifetime,
        )
        try:
            # Off the event loop (the original may be 10 MB); a report that cannot be composed
            # becomes a plain one (dsn.compose.compose_safely) rather than an endless retry.
            data = await asyncio.to_thread(compose_safely, report, now=now)
        except Exception:
            log.exception(
                "%s: %s report to <%s> could not be composed; not sent",
                entry.id,
                kind.value,
                entry.sender,
            )
            return
        redirected = await self._commit(entry.sender, data, subject=str(kind.value), now=now)
        if redirected is None:
            return  # dropped; _commit said why
        if redirected:
            log.warning(
                "%s: %s report for <%s> (no such mailbox) delivered to %s (%d recipient(s))",
                entry.id,
                kind.value,
                entry.sender,
                redirected,
                len(recipients),
            )
            return
        log.info(
            "%s: %s report for %d recipient(s) sent to <%s>",
            entry.id,
            kind.value,
            len(recipients),
            entry.sender,
        )

    def _original(self, entry: QueueEntry) -> bytes:
        limit = MAX_RETURNED_SIZE if entry.size <= MAX_RETURNED_SIZE else HEADER_SCAN_LIMIT
        with self.blobs.open_blocking(entry.blob_id) as handle:  # on a worker thread
            return handle.read(limit)

    async def _commit(self, to: str, data: bytes, subject: str, now: float) -> str | None:
        """Deliver a report to ``to``'s mailboxes, or queue it when ``to`` is elsewhere. When
        ``to`` is a local address nobody receives (cron's ``root@<domain>``), the report goes
        to postmaster instead. Returns "" when delivered as addressed, the postmaster
        address(es) when redirected, None when dropped (logged here)."""
        mailboxes = await self.local_mailboxes(to)
        redirected = ""
        if mailboxes == ():
            # A failure nobody can read is one the administrator must see (RFC 5321 §4.5.1).
            # postmaster@<to's domain> resolves as RCPT TO would (policy.directory): its user
            # or alias if there is one, else the mailbox postmaster@<first domain>.
            domain = to.rpartition("@")[2]
            postmaster = f"postmaster@{domain}" if domain else ""
            mailboxes = await self.local_mailboxes(postmaster) if postmaster else ()
            if mailboxes == ():
                log.warning("report for <%s> dropped: no such local mailbox", to)
                return None
            redirected = postmaster if mailboxes is None else ", ".join(mailboxes)
            to = postmaster
        writer = self.blobs.new_writer()
        writer.write(data)
        local = mailboxes or ()
        remote = () if mailboxes is not None else (RemoteRecipient(to),)

        def message_for(blob: SpooledBlob) -> IncomingMessage:
            return IncomingMessage(
                blob=blob,
                sender="",  # RFC 5321 §4.5.5: reports use the null reverse-path
                mailboxes=local,
                remote=remote,
                subject=subject,
                received_at=now,
            )

        await self.intake.accept(writer, message_for)
        return redirected


def wants(recipient: QueueRecipient, kind: str) -> bool:
    """RFC 3461 §4.1: NOTIFY=NEVER wants nothing; without NOTIFY we send FAILURE and DELAY."""
    notify = {n.upper() for n in recipient.notify}
    if not notify:
        return kind in ("FAILURE", "DELAY")
    return kind in notify and "NEVER" not in notify
