"""The queue runner: due times in a heap, one timer, per-destination workers, reports.

Flow for one message (``_process``): reports still owed are sent first (a crash between a
bounce decision and the bounce leaves ``reported = 0`` behind); then expiry (4.4.7), the delay
warning, the hop-count loop check; then ``begin_attempt`` moves ``next_attempt`` forward and
counts the attempt BEFORE any DNS query or dial. Pending recipients are grouped by domain and
handed to that domain's ``Destination``, whose workers (at most ``max_connections_per_domain``,
fewer while the remote limits us) resolve the route once and carry message after message over
one connection. Each message's results go to the store the moment its final reply arrives,
shielded from cancellation, in the next group transaction (``queue.batch``); the connection
carries the next message meanwhile instead of waiting for that fsync (a crash in between means
the message may go out twice, never that it is lost).

Scheduling is event-driven: ``_due`` maps id → due time and a heap orders them; the main loop
sleeps until the earliest due time or a wake-up (new mail from the store's ``on_queued`` hook,
or a change of the wake file that the CLI touches after flush/hold/release/delete/sendmail).
Pushing and popping cost O(log n); nothing scans the whole queue except the rescan after an
administrator's command and the one at start-up.

Retry steering reads the bounce analyzer's reason word for each reply: rate limits
(``toomanyconn``, ``speeding``) pause the destination with an exponential back-off and one
connection, which lift by themselves after deliveries succeed; greylisting retries at the
first retry interval; a temporary reply whose reason is a permanent policy block stops the
retries after ``STOP_EARLY_AFTER`` attempts. A temporary condition never bounces by itself;
only max_lifetime does.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from todoku.config.relay import RelayConfig
from todoku.dns.resolver import Resolver
from todoku.dsn.compose import compose_safely, original_subject
from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.ingest import HEADER_SCAN_LIMIT, scan_headers
from todoku.queue import routing
from todoku.queue.batch import ReadBatcher, StateWriter
from todoku.queue.dane import Dane
from todoku.queue.model import (
    DELIVERED,
    FAILED,
    PENDING,
    PHASE_EXPIRED,
    PHASE_LOOP,
    Attempt,
    Hop,
    Route,
    Verdict,
)
from todoku.queue.mtasts import MtaSts
from todoku.queue.schedule import Clock, Schedule, SystemClock, describe_duration
from todoku.queue.transport import Channel, OutboundMessage, Transport
from todoku.queue.wake import touch_wake_file
from todoku.store.api import (
    IncomingMessage,
    QueueEntry,
    QueueRecipient,
    RecipientResult,
    RemoteRecipient,
    Store,
)

log = logging.getLogger("todoku.queue")

READ_PIECE = 256 * 1024
# Messages up to this size are read once, into memory, when their attempt starts: the hop count,
# the DKIM signature and the SMTP transaction then share one read of the file (issue 7). Larger
# ones are streamed from the file in READ_PIECE pieces.
READ_WHOLE_LIMIT = 128 * 1024
MAX_PARALLEL_MESSAGES = 200
RATE_LIMIT_REASONS = frozenset({"toomanyconn", "speeding"})
GREYLIST_REASONS = frozenset({"greylisted", "greylisting"})
# The analyzer's taxonomy (Sisimai's) has no word for greylisting, and files such replies under
# securityerror or blocked; the remote's own words say it.
_GREYLIST_TEXT = re.compile(r"gr[ae]y[\s-]?list", re.IGNORECASE)


def is_greylisting(attempt: Attempt) -> bool:
    """The remote asked us to come back soon with the same message (RFC 6647)."""
    return attempt.reason in GREYLIST_REASONS or bool(_GREYLIST_TEXT.search(attempt.text))


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
MAX_BACKOFF = 3600.0
MAX_RETURNED_SIZE = 10 * 1024 * 1024  # larger originals come back as headers only
# An idle connection waits this long for the next message to the same domain before QUIT
# (like Postfix's connection cache): bursts share one connection.
CONNECTION_REUSE_WAIT = 1.0
PHASE_THROTTLED = "throttled"
MAX_ROUTE_REUSE = 3600.0  # seconds, whatever the TTL says


def classify(code: int | None, enhanced: str, text: str, phase: str = "") -> str:
    """The bounce analyzer's reason word for a remote's reply, read with the SMTP command it
    answered (issue 13: "452 4.5.3" at RCPT is a recipient-count limit, not a rate limit)."""
    from todoku.bounce import classify_reply

    try:
        return classify_reply(code, enhanced or None, text, phase.replace("-", " "))
    except Exception:
        log.exception("bounce classifier failed on %r %r %r", code, enhanced, text)
        return "undefined"


def reason_for(attempt: Attempt) -> str:
    """The reason word of a failed attempt. A reason the attempt already carries wins (the
    relay-login failure, DNS and routing answers, expiry: decided here, with no reply to read).
    Without any reply the remote never spoke: refused, timed out or closed is a network problem
    (RFC 3463 X.4.x), never a policy such as a blocklist, whatever our own words say; a failed
    TLS handshake is STARTTLS trouble. A reply is read by the analyzer with its phase."""
    if attempt.reason:
        return attempt.reason
    if attempt.code is None:
        return "failedstarttls" if attempt.phase in ("tls", "starttls") else "networkerror"
    return classify(attempt.code, attempt.enhanced, attempt.text, attempt.phase)


def is_recipient_limit(attempt: Attempt) -> bool:
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


@dataclass
class _Job:
    entry: QueueEntry
    recipients: tuple[QueueRecipient, ...]
    future: asyncio.Future[list[Attempt]]
    content: bytes | None = None  # the whole message when small (READ_WHOLE_LIMIT)
    signature: bytes | None = None  # DKIM header fields made with the read, when signed
    retired: bool = False  # its results finished the entry, removed in the same transaction

    def defer_internal(self, text: str) -> None:
        """Our own failure (a bug, a full disk): unless already answered, every recipient of
        the job is deferred (4.3.0, systemerror) with ``text``, so nothing waits forever."""
        if self.future.done():
            return
        self.future.set_result(
            [
                Attempt(
                    r.address,
                    Verdict.TEMPORARY,
                    "internal",
                    None,
                    "",
                    text,
                    "",
                    "systemerror",
                    "4.3.0",
                )
                for r in self.recipients
            ]
        )


@dataclass(frozen=True, slots=True)
class _Loaded:
    entry: QueueEntry | None
    content: bytes | None  # the whole message when small, else None
    hops: int  # Received: header fields
    signature: bytes | None = None  # DKIM header fields (small messages, signing on)


@dataclass
class Destination:
    """Everything the runner knows about one recipient domain right now."""

    domain: str
    max_limit: int
    limit: int
    jobs: deque[_Job] = field(default_factory=deque)
    active: int = 0
    paused_until: float = 0.0
    backoff: float = 0.0
    last_limit_reply: str = ""
    relay: RelayConfig | None = None  # a smarthost ([[relay]]) rather than a domain's MX
    more: asyncio.Event = field(default_factory=asyncio.Event)  # a job was added


class QueueRunner:
    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        transport: Transport,
        settings: RunnerSettings,
        *,
        is_self: Callable[[str, str], bool],
        local_mailboxes: Callable[[str], tuple[str, ...] | None],
        clock: Clock | None = None,
        shuffle: routing.Shuffle | None = None,
        signer: Callable[[bytes, str], bytes] | None = None,
        relays: tuple[RelayConfig, ...] = (),
        relay_transport: Callable[[RelayConfig], Transport] | None = None,
        mta_sts: MtaSts | None = None,
        dane: Dane | None = None,
    ) -> None:
        self.store = store
        self.state = StateWriter(store)  # the queue's bookkeeping, group-committed
        self.reader = ReadBatcher()  # the reads that start attempts, many per thread hop
        self.resolver = resolver
        self.transport = transport
        self.settings = settings
        self.schedule = settings.schedule
        self.is_self = is_self
        self.local_mailboxes = local_mailboxes
        self.clock = clock or SystemClock()
        self.shuffle = shuffle
        self.signer = signer  # DKIM: (message, sender) → header fields to send in front
        # [[relay]] smarthosts (queue.routing.choose): their destinations are keyed "relay[N]".
        self.relays = relays
        self.relay_transport = relay_transport  # None: ``transport`` carries relay hops too
        self._relay_transports: dict[int, Transport] = {}
        self.mta_sts = mta_sts  # MTA-STS policies for direct delivery (None: off)
        self.dane = dane  # DANE TLSA checks for direct delivery (None: off)
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._destinations: dict[str, Destination] = {}
        self._routes: dict[str, tuple[Route, float]] = {}  # domain → (route, reuse until)
        self._route_lookups: dict[str, asyncio.Future[Route]] = {}  # lookups in flight
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_PARALLEL_MESSAGES)
        self._wake_mtime: float = 0.0
        self.idle = asyncio.Event()  # set whenever nothing is in flight (tests wait on it)
        self.on_attempt: Callable[[Attempt], None] | None = None  # each result (/metrics)

    # ------------------------------------------------------------------ scheduling

    def enqueue(self, items: list[tuple[str, float]]) -> None:
        """New mail (from the store's on_queued hook, on the event loop thread)."""
        for queue_id, when in items:
            self._schedule(queue_id, when)
        self._wakeup.set()

    def poke(self) -> None:
        """Look at the heap again now (after a test moved the clock)."""
        self._wakeup.set()

    def _schedule(self, queue_id: str, when: float) -> None:
        if queue_id in self._busy:
            self._again.add(queue_id)
            return
        current = self._due.get(queue_id)
        if current is not None and current <= when:
            return
        self._due[queue_id] = when
        heapq.heappush(self._heap, (when, queue_id))

    async def rescan(self) -> None:
        rows = await asyncio.to_thread(self.store.queue_schedule)
        self._heap = []
        self._due = {}
        for queue_id, next_attempt, received_at, warned in rows:
            self._schedule(queue_id, self.schedule.next_wakeup(received_at, next_attempt, warned))
        self._wakeup.set()

    def _wake_file_changed(self) -> bool:
        path = self.settings.wake_path
        if path is None:
            return False
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime != self._wake_mtime:
            self._wake_mtime = mtime
            return True
        return False

    async def _watch_wake_file(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.wake_poll)
            if self._wake_file_changed():
                log.info("queue changed by an administrator command; rescanning")
                await self.rescan()

    async def run(self) -> None:
        """Run until ``stop()``. Owns every task it starts (one TaskGroup)."""
        self._wake_file_changed()
        await self.rescan()
        async with asyncio.TaskGroup() as group:
            self._group = group
            watcher = group.create_task(self._watch_wake_file())
            try:
                await self._main_loop(group)
            finally:
                watcher.cancel()
        await self.state.drain()
        self.state.close()

    async def _main_loop(self, group: asyncio.TaskGroup) -> None:
        while not self._stopping:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now and not self._stopping:
                when, queue_id = heapq.heappop(self._heap)
                if self._due.get(queue_id) != when:
                    continue  # superseded by an earlier or later schedule
                del self._due[queue_id]
                await self._slots.acquire()
                self._busy.add(queue_id)
                self.idle.clear()
                task = group.create_task(self._run_one(queue_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not self._busy:
                self.idle.set()
            timeout = max(0.0, self._heap[0][0] - self.clock.now()) if self._heap else None
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
            self._again.discard(queue_id)
            self._busy.discard(queue_id)
            self._schedule(queue_id, self.clock.now() + self.schedule.retry_interval(1))
        finally:
            self._busy.discard(queue_id)
            self._slots.release()
            if queue_id in self._again:
                self._again.discard(queue_id)
                entry = await asyncio.to_thread(self.store.get_queue_entry, queue_id)
                if entry is not None and not entry.held:
                    self._schedule(queue_id, self._wake_time(entry))
            if not self._busy:
                self.idle.set()
            self._wakeup.set()

    def _wake_time(self, entry: QueueEntry) -> float:
        return self.schedule.next_wakeup(entry.received_at, entry.next_attempt, entry.delay_warned)

    # ------------------------------------------------------------------ one message

    def _load(self, queue_id: str) -> _Loaded:
        """The entry and, unless there is nothing to send, its content: one trip to a thread."""
        entry = self.store.get_queue_entry(queue_id)
        if entry is None or entry.held or not any(r.state == PENDING for r in entry.recipients):
            return _Loaded(entry, None, 0)
        with self.store.open_blob(entry.blob_id) as handle:
            if entry.size <= READ_WHOLE_LIMIT:
                content = handle.read()
                head = content[:HEADER_SCAN_LIMIT]
            else:
                content, head = None, handle.read(HEADER_SCAN_LIMIT)
        end = head.find(b"\r\n\r\n")
        hops = scan_headers(head if end < 0 else head[: end + 2]).received_count
        signature = None
        if content is not None and self._signs(entry):
            # Signed here, on the reader's thread, rather than in a thread hop of its own
            # just before sending: py-spy put that hop at 10% of the event loop's busy time.
            signature = self._sign(content, entry)
        return _Loaded(entry, content, hops, signature)

    async def _process(self, queue_id: str) -> None:
        store = self.store
        loaded = await self.reader.run(lambda: self._load(queue_id))
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
            await self._report_delay(entry, pending, now)
            entry = replace(entry, delay_warned=True)
        if entry.next_attempt > now:
            self._schedule(queue_id, self._wake_time(entry))
            return
        hops = loaded.hops
        if hops > self.settings.max_hops:
            # RFC 5321 §6.3: a message that has passed this many relays is looping.
            text = f"mail forwarding loop: too many hops ({hops} Received: header fields)"
            await self._finish(
                entry,
                [
                    Attempt(
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
        await self.state.run(lambda: store.begin_attempt(queue_id, now, planned))
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
        jobs: list[_Job] = []
        for domain, recipients in by_domain.items():
            job = _Job(
                entry, tuple(recipients), loop.create_future(), loaded.content, loaded.signature
            )
            self._submit(domain, job, relay_of.get(domain))
            jobs.append(job)
        results = [a for job in jobs for a in await job.future]
        if any(job.retired for job in jobs):
            return  # delivered to everyone and removed with the results (_retire_with)
        await self._after_attempt(entry, attempt_number, results)

    async def _after_attempt(
        self, entry: QueueEntry, attempt_number: int, results: list[Attempt]
    ) -> None:
        now = self.clock.now()
        temporary = [a for a in results if a.verdict is Verdict.TEMPORARY]
        if temporary:
            minimum_wait = 0.0
            for attempt in temporary:
                destination = self._destinations.get(attempt.recipient.rpartition("@")[2].lower())
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
            await self.state.run(lambda: self.store.end_attempt(entry.id, next_attempt, last_error))
            log.info(
                "%s: deferred %d recipient(s); next attempt in %s",
                entry.id,
                len(temporary),
                describe_duration(next_attempt - now),
            )
        fresh = await asyncio.to_thread(self.store.get_queue_entry, entry.id)
        if fresh is None:
            return
        if not await self._settle(fresh):
            self._schedule(fresh.id, self._wake_time(fresh))

    async def _expire(self, entry: QueueEntry, pending: list[QueueRecipient], now: float) -> None:
        lifetime = describe_duration(self.schedule.max_lifetime)
        attempts = []
        for r in pending:
            last = f"; last error: {r.last_reply}" if r.last_reply else ""
            # RFC 3463 4.4.7: delivery time expired. The last remote reply stays the diagnostic.
            attempts.append(
                Attempt(
                    r.address,
                    Verdict.PERMANENT,
                    PHASE_EXPIRED,
                    r.code,
                    r.enhanced,
                    f"delivery time expired: could not deliver for {lifetime}{last}",
                    r.remote_mta,
                    "expired",
                    "4.4.7",
                )
            )
        log.info("%s: expired after %s; returning to <%s>", entry.id, lifetime, entry.sender)
        await self._finish(entry, attempts, now, keep_reply=True)
        await self._settle(entry)

    async def _finish(
        self,
        entry: QueueEntry,
        attempts: list[Attempt],
        when: float,
        keep_reply: bool = False,
        retire: bool = False,
    ) -> bool:
        """Record the results; with ``retire`` (see ``_retire_with``) also mark them reported
        and remove the entry, in the same transaction. True when the entry was removed."""
        results = []
        for a in attempts:
            state = {Verdict.DELIVERED: DELIVERED, Verdict.PERMANENT: FAILED}.get(
                a.verdict, PENDING
            )
            text = a.text
            if keep_reply:
                previous = next((r for r in entry.recipients if r.address == a.recipient), None)
                text = previous.last_reply if previous and previous.last_reply else a.text
            results.append(
                RecipientResult(
                    a.recipient,
                    state,
                    a.phase,
                    a.code,
                    a.enhanced,
                    text,
                    a.remote_mta,
                    a.reason,
                    a.status,
                    a.recipient.rpartition("@")[2].lower(),
                )
            )
        handed_over = [
            a.recipient for a in attempts if a.verdict is Verdict.DELIVERED and a.dsn_handed_over
        ]

        reported = [a.recipient for a in attempts] if retire else handed_over

        def record() -> bool:
            self.store.record_results(entry.id, results, when)
            if reported:
                self.store.mark_reported(entry.id, reported)
            return retire and self.store.retire_queue_entry(entry.id)

        # Once the remote said 250 the record lands even if we are stopping (StateWriter.run).
        return await self.state.run(record)

    @staticmethod
    def _retire_with(entry: QueueEntry, attempts: list[Attempt]) -> bool:
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

    # ------------------------------------------------------------------ destinations

    def _destination(self, domain: str, relay: RelayConfig | None = None) -> Destination:
        destination = self._destinations.get(domain)
        if destination is None:
            limit = self.settings.max_connections_per_domain
            destination = Destination(domain, limit, limit, relay=relay)
            self._destinations[domain] = destination
        return destination

    def destination(self, domain: str) -> Destination | None:
        return self._destinations.get(domain)

    def _submit(self, domain: str, job: _Job, relay: RelayConfig | None = None) -> None:
        destination = self._destination(domain, relay)
        destination.jobs.append(job)
        destination.more.set()
        self._spawn_workers(destination)

    def _spawn_workers(self, destination: Destination) -> None:
        while destination.active < destination.limit and destination.jobs:
            destination.active += 1
            task = self._group.create_task(self._worker(destination))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _worker(self, destination: Destination) -> None:
        try:
            await self._work(destination)
        except Exception:
            # A bug must not leave messages waiting forever: defer whatever this worker held.
            log.exception("%s: delivery worker failed", destination.domain)
            while destination.jobs:
                destination.jobs.popleft().defer_internal("internal error in the delivery worker")

    async def _work(self, destination: Destination) -> None:
        channel: Channel | None = None
        job: _Job | None = None
        try:
            if self._throttled(destination):
                await self._defer_throttled(destination)
                return
            if destination.relay is not None:
                route = await routing.relay_route(self.resolver, destination.relay)
            else:
                route = await self._route(destination.domain)
            while not self._stopping:
                if not destination.jobs:
                    if channel is None or not channel.usable or not await self._more(destination):
                        break
                    continue
                if self._throttled(destination):
                    await self._defer_throttled(destination)
                    return
                job = destination.jobs.popleft()
                if route.failure is not None:
                    await self._complete(
                        job, [replace(route.failure, recipient=r.address) for r in job.recipients]
                    )
                    continue
                if channel is None or not channel.usable:
                    if channel is not None:
                        await channel.close()
                    channel, failure = await self._open(route, destination)
                    if channel is None:
                        assert failure is not None
                        # No hop takes mail now: every message waiting for this domain
                        # gets the same answer rather than dialling them all again.
                        waiting = [job, *destination.jobs]
                        destination.jobs.clear()
                        for each in waiting:
                            await self._complete(
                                each,
                                [replace(failure, recipient=r.address) for r in each.recipients],
                            )
                        continue
                await self._deliver(destination, channel, job)
        except Exception:
            if job is not None and not job.future.done():
                destination.jobs.appendleft(job)  # the caller defers it with the rest
            raise
        finally:
            if channel is not None:
                await channel.close()
            destination.active -= 1
            if destination.jobs and not self._stopping:
                self._spawn_workers(destination)

    async def _route(self, domain: str) -> Route:
        """The hops for ``domain``; a resolved route is reused for its DNS answers' TTL
        (at most MAX_ROUTE_REUSE), so new connections to a busy domain ask no DNS questions.
        Failures are never reused: the next attempt asks again."""
        now = self.clock.now()
        cached = self._routes.get(domain)
        if cached is not None and cached[1] > now:
            return cached[0]
        # The workers a flush starts for one domain all arrive here at once: one lookup for
        # them all (py-spy: 20 identical lookups were 3% of the event loop's busy time).
        asking = self._route_lookups.get(domain)
        if asking is not None:
            return await asyncio.shield(asking)
        asking = asyncio.ensure_future(
            routing.route(
                self.resolver,
                domain,
                is_self=self.is_self,
                mta_sts=self.mta_sts,
                dane=self.dane,
                **({"shuffle": self.shuffle} if self.shuffle else {}),
            )
        )
        self._route_lookups[domain] = asking
        try:
            route = await asyncio.shield(asking)
        finally:
            if self._route_lookups.get(domain) is asking:
                del self._route_lookups[domain]
        if route.failure is None and route.ttl > 0:
            self._routes[domain] = (route, now + min(route.ttl, MAX_ROUTE_REUSE))
        else:
            self._routes.pop(domain, None)
        return route

    async def _more(self, destination: Destination) -> bool:
        """Keep an open connection a moment for the next message to this domain."""
        destination.more.clear()
        try:
            async with asyncio.timeout(CONNECTION_REUSE_WAIT):
                await destination.more.wait()
        except TimeoutError:
            return False
        return bool(destination.jobs)

    async def _open(
        self, route: Route, destination: Destination
    ) -> tuple[Channel | None, Attempt | None]:
        """Try every hop in order (RFC 5321 §5.1) until one takes mail."""
        failure: Attempt | None = None
        transport = self._transport_for(destination)
        for hop in route.hops:
            result = await transport.connect(hop)
            if not isinstance(result, Attempt):
                return result, None
            failure = self._classified(result)
            log.info("%s: %s", destination.domain, failure.describe())
            if failure.reason in RATE_LIMIT_REASONS:
                self._slow_down(destination, failure)
            elif failure.code is None:
                # Refused or unreachable: fewer parallel connections to this destination.
                destination.limit = max(1, destination.limit // 2)
        if failure is None:
            failure = Attempt(
                "",
                Verdict.TEMPORARY,
                "routing",
                None,
                "",
                f"no mail exchanger to try for {route.domain}",
                "",
                "networkerror",
                "4.4.4",
            )
        # Every hop refused: a 5xx greeting everywhere is permanent; anything else is retried.
        return None, failure

    def _transport_for(self, destination: Destination) -> Transport:
        relay = destination.relay
        if relay is None or self.relay_transport is None:
            return self.transport
        transport = self._relay_transports.get(relay.index)
        if transport is None:
            transport = self._relay_transports[relay.index] = self.relay_transport(relay)
        return transport

    def _classified(self, attempt: Attempt, attempts_so_far: int = 0) -> Attempt:
        if attempt.verdict is Verdict.DELIVERED:
            return replace(attempt, reason="delivered")
        reason = reason_for(attempt)
        attempt = replace(attempt, reason=reason)
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

    async def _deliver(self, destination: Destination, channel: Channel, job: _Job) -> None:
        entry = job.entry
        content = job.content
        if not self._signs(entry):
            prefix = b""
        elif job.signature is not None:
            prefix = job.signature
        elif content is not None:
            prefix = await asyncio.to_thread(self._sign, content, entry)
        else:
            prefix = await asyncio.to_thread(self._signature, entry)
        message = OutboundMessage(
            queue_id=entry.id,
            sender=entry.sender,
            recipients=tuple((r.address, r.notify, r.orcpt) for r in job.recipients),
            size=entry.size + len(prefix),
            open_content=(
                (lambda: (prefix, content))
                if content is not None
                else (lambda: self._content(entry.blob_id, prefix))
            ),
            smtputf8=entry.smtputf8,
            ret=entry.ret,
            envid=entry.envid,
            requiretls=entry.requiretls,
        )
        raw = await channel.send(message)
        attempts = [self._classified(a, entry.attempts + 1) for a in raw]
        # Not awaited: the next message goes out while these results are being committed.
        completion = asyncio.ensure_future(
            self._complete_soon(job, attempts, self._retire_with(entry, attempts))
        )
        self._tasks.add(completion)
        completion.add_done_callback(self._tasks.discard)
        if any(a.reason in RATE_LIMIT_REASONS and a.verdict is Verdict.TEMPORARY for a in attempts):
            self._slow_down(
                destination, next(a for a in attempts if a.reason in RATE_LIMIT_REASONS)
            )
        elif any(a.verdict is Verdict.DELIVERED for a in attempts):
            self._speed_up(destination)

    def _signs(self, entry: QueueEntry) -> bool:
        """DKIM-sign only what an authenticated user of ours submitted, as the server recorded
        when it accepted the message (``submitted_by``): mail forwarded from the MX, reports and
        local injection leave unsigned, whatever their header fields say (issue 12: a search of
        the Received field for "(Authenticated sender: " was an oracle anyone could steer)."""
        return self.signer is not None and bool(entry.sender) and entry.submitted_by is not None

    def _signature(self, entry: QueueEntry) -> bytes:
        if not self._signs(entry):
            return b""
        try:
            with self.store.open_blob(entry.blob_id) as handle:
                content = handle.read()
        except OSError:
            log.exception("%s: cannot read the message to sign it; sending unsigned", entry.id)
            return b""
        return self._sign(content, entry)

    def _sign(self, content: bytes, entry: QueueEntry) -> bytes:
        assert self.signer is not None
        try:
            return self.signer(content, entry.sender)
        except Exception:
            log.exception("%s: DKIM signing failed; sending unsigned", entry.id)
            return b""

    def _content(self, blob_id: str, prefix: bytes = b"") -> Iterator[bytes]:
        if prefix:
            yield prefix
        with self.store.open_blob(blob_id) as handle:
            while piece := handle.read(READ_PIECE):
                yield piece

    async def _complete_soon(self, job: _Job, attempts: list[Attempt], retire: bool) -> None:
        try:
            await self._complete(job, attempts, retire=retire)
        except Exception:
            # The results could not be written (disk full): the message is tried again later.
            log.exception("%s: recording the delivery results failed", job.entry.id)
            job.defer_internal("internal error recording the delivery")

    async def _complete(self, job: _Job, attempts: list[Attempt], retire: bool = False) -> None:
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
        job.retired = await self._finish(job.entry, attempts, self.clock.now(), retire=retire)
        if not job.future.done():
            job.future.set_result(attempts)

    def _throttled(self, destination: Destination) -> bool:
        return destination.paused_until > self.clock.now()

    def _slow_down(self, destination: Destination, attempt: Attempt) -> None:
        base = max(self.schedule.retry[0], 1.0)
        destination.backoff = min(MAX_BACKOFF, max(base, destination.backoff * 2))
        destination.paused_until = self.clock.now() + destination.backoff
        destination.limit = 1
        destination.last_limit_reply = attempt.describe()
        log.warning(
            "%s limits us (%s): one connection, pausing %s",
            destination.domain,
            destination.last_limit_reply,
            describe_duration(destination.backoff),
        )

    def _speed_up(self, destination: Destination) -> None:
        if destination.limit < destination.max_limit or destination.backoff:
            destination.backoff = 0.0
            destination.limit = min(destination.max_limit, destination.limit + 1)

    async def _defer_throttled(self, destination: Destination) -> None:
        wait = describe_duration(destination.paused_until - self.clock.now())
        while destination.jobs:
            job = destination.jobs.popleft()
            text = (
                f"delivery to {destination.domain} paused for {wait}: the remote limits our "
                f"sending ({destination.last_limit_reply})"
            )
            await self._complete(
                job,
                [
                    Attempt(
                        r.address,
                        Verdict.TEMPORARY,
                        PHASE_THROTTLED,
                        None,
                        "",
                        text,
                        "",
                        "toomanyconn",
                        "4.7.0",
                    )
                    for r in job.recipients
                ],
            )

    # ------------------------------------------------------------------ reports

    async def _settle(self, entry: QueueEntry, just_read: bool = False) -> bool:
        """Send the reports owed for final recipients, then retire the entry if it is done.
        True when the entry is gone. ``just_read``: ``entry`` is fresh from the store."""
        fresh = (
            entry if just_read else await asyncio.to_thread(self.store.get_queue_entry, entry.id)
        )
        if fresh is None:
            return True
        unreported = [r for r in fresh.recipients if r.state != PENDING and not r.reported]
        if not unreported and any(r.state == PENDING for r in fresh.recipients):
            return False  # work remains: no write needed to learn that
        reported: list[str] = []
        if unreported:
            failed = [r for r in unreported if r.state == FAILED and _wants(r, "FAILURE")]
            succeeded = [r for r in unreported if r.state == DELIVERED and "SUCCESS" in r.notify]
            now = self.clock.now()
            if fresh.sender:  # RFC 3461 §6.2: never a report for a report (null sender)
                if failed:
                    await self._send_report(fresh, ReportKind.FAILURE, failed, now)
                if succeeded:
                    await self._send_report(fresh, ReportKind.SUCCESS, succeeded, now)
            reported = [r.address for r in unreported]

        def mark_and_retire() -> bool:
            if reported:
                self.store.mark_reported(fresh.id, reported)
            return self.store.retire_queue_entry(fresh.id)

        return await self.state.run(mark_and_retire)

    async def _report_delay(
        self, entry: QueueEntry, pending: list[QueueRecipient], now: float
    ) -> None:
        wanted = [r for r in pending if _wants(r, "DELAY")]
        if entry.sender and wanted:
            await self._send_report(entry, ReportKind.DELAY, wanted, now)
        await asyncio.to_thread(self.store.mark_delay_warned, entry.id)

    async def _send_report(
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
            reporting_mta=self.settings.hostname,
            to=entry.sender,
            queue_id=entry.id,
            arrival_date=entry.received_at,
            recipients=tuple(
                RecipientReport(
                    final_recipient=r.address,
                    original_recipient=r.orcpt,
                    action=action,
                    status=r.status or ("4.0.0" if kind is ReportKind.DELAY else "5.0.0"),
                    remote_mta=r.remote_mta,
                    diagnostic=_diagnostic(r),
                    last_attempt=r.updated_at or None,
                    will_retry_until=expires if kind is ReportKind.DELAY else None,
                    reason=r.reason,
                    detail=r.last_reply,
                )
                for r in recipients
            ),
            original=original,
            headers_only=headers_only,
            lang=self.settings.lang,
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
        redirected = await self._commit_report(entry.sender, data, subject=str(kind.value), now=now)
        if redirected is None:
            return  # dropped; _commit_report said why
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
        with self.store.open_blob(entry.blob_id) as handle:
            return handle.read(limit)

    async def _commit_report(self, to: str, data: bytes, subject: str, now: float) -> str | None:
        """Deliver a report to ``to``'s mailboxes, or queue it when ``to`` is elsewhere. When
        ``to`` is a local address nobody receives (cron's ``root@<domain>``), the report goes
        to postmaster instead. Returns "" when delivered as addressed, the postmaster
        address(es) when redirected, None when dropped (logged here)."""
        mailboxes = self.local_mailboxes(to)
        redirected = ""
        if mailboxes == ():
            # A failure nobody can read is one the administrator must see (RFC 5321 §4.5.1).
            # postmaster@<to's domain> resolves as RCPT TO would (policy.directory): its user
            # or alias if there is one, else the mailbox postmaster@<first domain>.
            domain = to.rpartition("@")[2]
            postmaster = f"postmaster@{domain}" if domain else ""
            mailboxes = self.local_mailboxes(postmaster) if postmaster else ()
            if mailboxes == ():
                log.warning("report for <%s> dropped: no such local mailbox", to)
                return None
            redirected = postmaster if mailboxes is None else ", ".join(mailboxes)
            to = postmaster
        writer = self.store.new_blob()
        try:
            writer.write(data)
            blob = await asyncio.to_thread(writer.finish)
        except BaseException:
            writer.abort()
            raise
        message = IncomingMessage(
            blob=blob,
            sender="",  # RFC 5321 §4.5.5: reports use the null reverse-path
            mailboxes=mailboxes or (),
            remote=() if mailboxes is not None else (RemoteRecipient(to),),
            subject=subject,
            received_at=now,
        )
        await self.store.commit(message)
        return redirected


def _wants(recipient: QueueRecipient, kind: str) -> bool:
    """RFC 3461 §4.1: NOTIFY=NEVER wants nothing; without NOTIFY we send FAILURE and DELAY."""
    notify = {n.upper() for n in recipient.notify}
    if not notify:
        return kind in ("FAILURE", "DELAY")
    return kind in notify and "NEVER" not in notify


def _diagnostic(recipient: QueueRecipient) -> str:
    if recipient.code is None:
        return ""
    enhanced = f" {recipient.enhanced}" if recipient.enhanced else ""
    text = " ".join(recipient.last_reply.splitlines())
    if recipient.phase == PHASE_EXPIRED:
        text = text.split("; last error: ")[-1]
    return f"smtp; {recipient.code}{enhanced} {text}".strip()


__all__ = ["Hop", "QueueRunner", "RunnerSettings", "touch_wake_file"]  # touch_wake_file: queue.wake
