"""The queue runner: the coordinator of scheduling, delivery and reports.

Flow for one message (``_process``): reports still owed are sent first (a crash between a
bounce decision and the bounce leaves ``reported = 0`` behind); then expiry (4.4.7), the delay
warning, the hop-count loop check; then ``begin_attempt`` moves ``next_attempt`` forward and
counts the attempt BEFORE any DNS query or dial. Pending recipients are grouped by domain and
handed to that domain's destination (``queue.delivery``: per-destination workers, routes,
throttling). Each message's results go to the store the moment its final reply arrives,
shielded from cancellation, in the next group transaction (``queue.batch``); the connection
carries the next message meanwhile instead of waiting for that fsync (a crash in between means
the message may go out twice, never that it is lost).

The parts, one concern each: ``queue.scheduler`` (due times in a heap, the wake file),
``queue.content`` (reading and DKIM-signing the message), ``queue.delivery`` (destinations),
``queue.steering`` (what a reply asks of the retries), ``queue.reports`` (bounces, delay
warnings, success reports and their delivery).

Scheduling is event-driven: the main loop sleeps until the earliest due time or a wake-up (new
mail from the store's ``on_queued`` hook, or a change of the wake file that the CLI touches
after flush/hold/release/delete/sendmail). Nothing scans the whole queue except the rescan
after an administrator's command and the one at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from todoku.config.relay import RelayConfig
from todoku.dns.resolver import Resolver
from todoku.dsn.durations import describe_duration
from todoku.outcome import PHASE_EXPIRED, PHASE_LOOP, Outcome, Verdict
from todoku.queue import routing
from todoku.queue.batch import ReadBatcher
from todoku.queue.content import MessageContent
from todoku.queue.dane import Dane
from todoku.queue.delivery import Deliveries, Destination, Job
from todoku.queue.model import PENDING, Hop
from todoku.queue.mtasts import MtaSts
from todoku.queue.reports import Reporter
from todoku.queue.schedule import Clock, Schedule, SystemClock
from todoku.queue.scheduler import Timetable, WakeFile
from todoku.queue.steering import is_greylisting, is_recipient_limit
from todoku.queue.transport import Transport
from todoku.queue.wake import touch_wake_file
from todoku.store.api import QueueEntry, QueueRecipient, RecipientResult
from todoku.store.backend import Storage

log = logging.getLogger("todoku.queue")

MAX_PARALLEL_MESSAGES = 200


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    hostname: str
    lang: str
    schedule: Schedule
    # Postfix's default_destination_concurrency_limit. 10 and 20 measured alike (2,000 x 4 KiB
    # to smtp-sink, alternating, load 4-5: medians 3.09 s and 3.27 s, 1.2-1.6 ms CPU/msg both);
    # 20 kept, since a remote slower than loopback hides more round trips behind more connections.
    max_connections_per_domain: int = 20
    max_hops: int = 50
    wake_path: Path | None = None
    wake_poll: float = 0.2  # a stat() of the wake file: cheap, and flush feels immediate


class QueueRunner:
    def __init__(
        self,
        storage: Storage,
        resolver: Resolver,
        transport: Transport,
        settings: RunnerSettings,
        *,
        is_self: Callable[[str, str], bool],
        local_mailboxes: Callable[[str], Awaitable[tuple[str, ...] | None]],
        clock: Clock | None = None,
        shuffle: routing.Shuffle | None = None,
        signer: Callable[[bytes, str], bytes] | None = None,
        relays: tuple[RelayConfig, ...] = (),
        relay_transport: Callable[[RelayConfig], Transport] | None = None,
        mta_sts: MtaSts | None = None,
        dane: Dane | None = None,
    ) -> None:
        self.queue = storage.queue  # the queue's bookkeeping (the backend groups the writes)
        self.reader = ReadBatcher()  # the reads that start attempts, many per thread hop
        self.settings = settings
        self.schedule = settings.schedule
        self.clock = clock or SystemClock()
        # [[relay]] smarthosts (queue.routing.choose): their destinations are keyed "relay[N]".
        self.relays = relays
        self.content = MessageContent(storage.blobs, signer)
        self.deliveries = Deliveries(
            resolver,
            transport,
            self.content,
            clock=self.clock,
            max_connections=settings.max_connections_per_domain,
            pause_base=max(self.schedule.retry[0], 1.0),
            complete=self._complete,
            spawn=self._spawn,
            detach=self._detach,
            stopping=lambda: self._stopping,
            is_self=is_self,
            shuffle=shuffle,
            relay_transport=relay_transport,
            mta_sts=mta_sts,
            dane=dane,
        )
        self.reports = Reporter(
            storage,
            self.schedule,
            hostname=settings.hostname,
            lang=settings.lang,
            local_mailboxes=local_mailboxes,
        )
        self.timetable = Timetable()
        self._wake_file = WakeFile(settings.wake_path)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_PARALLEL_MESSAGES)
        # Entries another node had claimed (begin_attempt answered 0): when to look again.
        self._claimed_elsewhere: dict[str, float] = {}
        self.idle = asyncio.Event()  # set whenever nothing is in flight (tests wait on it)
        self.on_attempt: Callable[[Outcome], None] | None = None  # each result (/metrics)

    def set_relays(self, relays: tuple[RelayConfig, ...]) -> None:
        """A reload's ``[[relay]]`` tables: the next attempt of every message is routed by them.
        Deliveries already under way finish on the relay they started with."""
        if relays != self.relays:
            self.relays = relays
            self.deliveries.relays_changed()

    @property
    def signer(self) -> Callable[[bytes, str], bytes] | None:
        return self.content.signer

    @signer.setter
    def signer(self, signer: Callable[[bytes, str], bytes] | None) -> None:
        self.content.signer = signer

    @property
    def busy(self) -> bool:
        """Some message is being worked on."""
        return self.timetable.busy

    def destination(self, domain: str) -> Destination | None:
        return self.deliveries.destination(domain)

    # ------------------------------------------------------------------ scheduling

    def enqueue(self, items: list[tuple[str, float]]) -> None:
        """New mail (from the store's on_queued hook, on the event loop thread)."""
        for queue_id, when in items:
            self.timetable.schedule(queue_id, when)
        self._wakeup.set()

    def poke(self) -> None:
        """Look at the heap again now (after a test moved the clock)."""
        self._wakeup.set()

    async def rescan(self) -> None:
        rows = await self.queue.due()
        self.timetable.clear()
        for row in rows:
            self.timetable.schedule(
                row.queue_id,
                self.schedule.next_wakeup(row.received_at, row.next_attempt, row.delay_warned),
            )
        self._wakeup.set()

    async def _watch_wake_file(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.wake_poll)
            if self._wake_file.changed():
                log.info("queue changed by an administrator command; rescanning")
                await self.rescan()

    async def run(self) -> None:
        """Run until ``stop()``. Owns every task it starts (one TaskGroup)."""
        self._wake_file.changed()
        await self.rescan()
        async with asyncio.TaskGroup() as group:
            self._group = group
            watcher = group.create_task(self._watch_wake_file())
            try:
                await self._main_loop()
            finally:
                watcher.cancel()
        await self.queue.drain()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._group is not None
        self._track(self._group.create_task(work))

    def _detach(self, work: Coroutine[Any, Any, None]) -> None:
        self._track(asyncio.ensure_future(work))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _main_loop(self) -> None:
        timetable = self.timetable
        while not self._stopping:
            now = self.clock.now()
            while not self._stopping and (queue_id := timetable.pop_due(now)) is not None:
                await self._slots.acquire()
                self.idle.clear()
                self._spawn(self._run_one(queue_id))
            if not timetable.busy:
                self.idle.set()
            due = timetable.next_due()
            timeout = max(0.0, due - self.clock.now()) if due is not None else None
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        for task in list(self._tasks):
            task.cancel()

    async def _run_one(self, queue_id: str) -> None:
        try:
            await self._process(queue_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: delivery attempt failed unexpectedly; retrying later", queue_id)
            self.timetable.abandon(queue_id)
            self.timetable.schedule(queue_id, self.clock.now() + self.schedule.retry_interval(1))
        finally:
            again = self.timetable.done(queue_id)
            self._slots.release()
            look_again = self._claimed_elsewhere.pop(queue_id, None)
            if look_again is not None:
                self.timetable.schedule(queue_id, look_again)
            elif again:
                entry = await self.queue.get(queue_id)
                if entry is not None and not entry.held:
                    self.timetable.schedule(queue_id, self._wake_time(entry))
            if not self.timetable.busy:
                self.idle.set()
            self._wakeup.set()

    def _wake_time(self, entry: QueueEntry) -> float:
        return self.schedule.next_wakeup(entry.received_at, entry.next_attempt, entry.delay_warned)

    # ------------------------------------------------------------------ one message

    async def _process(self, queue_id: str) -> None:
        read = await self.queue.get(queue_id)
        if read is None:
            return
        loaded = await self.reader.run(lambda: self.content.load(read))
        entry = loaded.entry
        if entry is None or entry.held:
            return
        if await self._settle(entry, just_read=True):
            return
        now = self.clock.now()
        pending = [r for r in entry.recipients if r.state == PENDING]
        if self.schedule.expired(entry.received_at, now):
            await self._expire(entry, pending, now)
            return
        if self.schedule.delay_warning_due(entry.received_at, now, entry.delay_warned):
            await self.reports.delay(entry, pending, now)
            entry = replace(entry, delay_warned=True)
        if entry.next_attempt > now:
            self.timetable.schedule(queue_id, self._wake_time(entry))
            return
        hops = loaded.hops
        if hops > self.settings.max_hops:
            # RFC 5321 §6.3: a message that has passed this many relays is looping.
            text = f"mail forwarding loop: too many hops ({hops} Received: header fields)"
            await self._finish(
                entry,
                [
                    Outcome(
                        r.address,
                        Verdict.PERMANENT,
                        PHASE_LOOP,
                        None,
                        "",
                        text,
                        "",
                        "networkerror",
                        "5.4.6",
                    )
                    for r in pending
                ],
                now,
            )
            await self._settle(entry)
            return
        attempt_number = entry.attempts + 1
        planned = self.schedule.next_attempt(entry.received_at, attempt_number, now)
        # Written BEFORE dialling: a crash from here on retries at ``planned``, not in a loop.
        # It is also the claim (store.queue): 0 when the entry is gone, or when another node
        # sharing the queue holds it; that node delivers it, and we look again at ``planned``.
        if not await self.queue.begin_attempt(queue_id, now, planned):
            self._claimed_elsewhere[queue_id] = planned  # scheduled when this attempt ends
            return
        by_domain: dict[str, list[QueueRecipient]] = {}
        relay_of: dict[str, RelayConfig] = {}
        for recipient in pending:
            key = recipient.address.rpartition("@")[2].lower()
            if self.relays:
                relay = routing.choose(self.relays, key, entry.attempts).relay
                if relay is not None:
                    key = relay.key  # every domain this relay takes shares its connections
                    relay_of[key] = relay
            by_domain.setdefault(key, []).append(recipient)
        loop = asyncio.get_running_loop()
        jobs: list[Job] = []
        for domain, recipients in by_domain.items():
            job = Job(
                entry, tuple(recipients), loop.create_future(), loaded.content, loaded.signature
            )
            self.deliveries.submit(domain, job, relay_of.get(domain), entry.tls_optional)
            jobs.append(job)
        results = [a for job in jobs for a in await job.future]
        if any(job.retired for job in jobs):
            return  # delivered to everyone and removed with the results (_retire_with)
        await self._after_attempt(entry, attempt_number, results)

    async def _after_attempt(
        self, entry: QueueEntry, attempt_number: int, results: list[Outcome]
    ) -> None:
        now = self.clock.now()
        temporary = [a for a in results if a.verdict is Verdict.TEMPORARY]
        if temporary:
            minimum_wait = 0.0
            for attempt in temporary:
                destination = self.destination(attempt.recipient.rpartition("@")[2].lower())
                if destination is not None and destination.paused_until > now:
                    minimum_wait = max(minimum_wait, destination.paused_until - now)
            accepted = any(a.verdict is not Verdict.TEMPORARY for a in results)
            if accepted and all(is_recipient_limit(a) for a in temporary):
                # The remote took some recipients and limits how many one transaction
                # carries: the rest go now, in a transaction of their own.
                next_attempt = now
            elif all(is_greylisting(a) for a in temporary):
                # Greylisting: the remote wants to see the same message again soon.
                next_attempt = min(
                    now + max(self.schedule.retry[0], minimum_wait),
                    self.schedule.expires_at(entry.received_at),
                )
            else:
                next_attempt = self.schedule.next_attempt(
                    entry.received_at, attempt_number, now, minimum_wait=minimum_wait
                )
            last_error = "; ".join(dict.fromkeys(a.describe() for a in temporary))[:1000]
            await self.queue.end_attempt(entry.id, next_attempt, last_error)
            log.info(
                "%s: deferred %d recipient(s); next attempt in %s",
                entry.id,
                len(temporary),
                describe_duration(next_attempt - now),
            )
        fresh = await self.queue.get(entry.id)
        if fresh is None:
            return
        if not await self._settle(fresh):
            self.timetable.schedule(fresh.id, self._wake_time(fresh))

    async def _expire(self, entry: QueueEntry, pending: list[QueueRecipient], now: float) -> None:
        lifetime = describe_duration(self.schedule.max_lifetime)
        note = f"delivery time expired: could not deliver for {lifetime}"
        # RFC 3463 4.4.7: delivery time expired, decided here; the last remote reply stays
        # the outcome's reply (the report's Diagnostic-Code), our decision is its note.
        outcomes = [
            replace(
                r.outcome,
                verdict=Verdict.PERMANENT,
                phase=PHASE_EXPIRED,
                reason="expired",
                status="4.4.7",
                note=note,
            )
            for r in pending
        ]
        log.info("%s: expired after %s; returning to <%s>", entry.id, lifetime, entry.sender)
        await self._finish(entry, outcomes, now)
        await self._settle(entry)

    async def _finish(
        self,
        entry: QueueEntry,
        attempts: list[Outcome],
        when: float,
        retire: bool = False,
    ) -> bool:
        """Record the results; with ``retire`` (see ``_retire_with``) also mark them reported
        and remove the entry, in the same transaction. True when the entry was removed."""
        results = [RecipientResult.of(a) for a in attempts]
        handed_over = [
            a.recipient for a in attempts if a.verdict is Verdict.DELIVERED and a.dsn_handed_over
        ]

        reported = [a.recipient for a in attempts] if retire else handed_over

        # Once the remote said 250 the record lands even if we are stopping (store.queue).
        return await self.queue.record_results(
            entry.id, results, when, reported=reported, retire=retire
        )

    @staticmethod
    def _retire_with(entry: QueueEntry, attempts: list[Outcome]) -> bool:
        """Do these results finish the entry with no report owed? Every other recipient is
        final and reported, every one here was delivered, and none asked for a success report
        that the remote did not take over (RFC 3461 §5.2.2 NOTIFY=SUCCESS). Then ``_settle``
        would only mark them reported and retire the entry: that happens at once instead."""
        delivered = {a.recipient: a for a in attempts if a.verdict is Verdict.DELIVERED}
        if len(delivered) != len(attempts):
            return False
        for recipient in entry.recipients:
            attempt = delivered.get(recipient.address)
            if attempt is None:
                if recipient.state == PENDING or not recipient.reported:
                    return False
            elif "SUCCESS" in {n.upper() for n in recipient.notify} and not attempt.dsn_handed_over:
                return False
        return True

    async def _complete(self, job: Job, attempts: list[Outcome]) -> None:
        """A destination's results for one job: logged, recorded (the entry retired with them
        when they finish it, ``_retire_with``), and handed to the waiting ``_process``."""
        for a in attempts:
            decision = {
                Verdict.DELIVERED: "delivered",
                Verdict.PERMANENT: "bounced",
                Verdict.TEMPORARY: "deferred",
            }[a.verdict]
            log.info(
                "%s: to=<%s> %s reason=%s => %s",
                job.entry.id,
                a.recipient,
                a.describe(),
                a.reason or "-",
                decision,
            )
            if self.on_attempt is not None:
                self.on_attempt(a)
        retire = self._retire_with(job.entry, attempts)
        job.retired = await self._finish(job.entry, attempts, self.clock.now(), retire=retire)
        if not job.future.done():
            job.future.set_result(attempts)

    # ------------------------------------------------------------------ reports

    async def _settle(self, entry: QueueEntry, just_read: bool = False) -> bool:
        """Send the reports owed for final recipients, then retire the entry if it is done.
        True when the entry is gone. ``just_read``: ``entry`` is fresh from the store."""
        fresh = entry if just_read else await self.queue.get(entry.id)
        if fresh is None:
            return True
        unreported = [r for r in fresh.recipients if r.state != PENDING and not r.reported]
        if not unreported and any(r.state == PENDING for r in fresh.recipients):
            return False  # work remains: no write needed to learn that
        if unreported:
            await self.reports.final(fresh, unreported, self.clock.now())
        reported = [r.address for r in unreported]

        return await self.queue.mark_reported(fresh.id, reported, retire=True)


__all__ = ["Hop", "QueueRunner", "RunnerSettings", "touch_wake_file"]  # touch_wake_file: queue.wake
