"""Per-destination delivery: a pool of workers per recipient domain (or smarthost), each
resolving the route once and carrying message after message over one connection.

A destination has at most ``max_connections_per_domain`` workers, fewer while the remote limits
us: a rate-limit reply (queue.steering) pauses it with an exponential back-off and one
connection, lifted step by step as deliveries succeed; a hop that refuses or cannot be reached
halves the number. Routes come from DNS (queue.routing, with the domain's MTA-STS and DANE
policies) and are reused for their TTL; a ``[[relay]]`` destination always goes to its
smarthost. Messages marked "TLS-Required: No" (RFC 8689 §4.1: the server's own TLS reports)
have a destination of their own per domain, routed without MTA-STS and DANE. Each message's results go to ``complete`` the moment its final reply arrives, not
awaited: the connection carries the next message meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from todoku.config.relay import RelayConfig
from todoku.dns.resolver import Resolver
from todoku.dsn.durations import describe_duration
from todoku.outcome import PHASE_INTERNAL, PHASE_THROTTLED, Outcome, Verdict
from todoku.queue import routing
from todoku.queue.content import MessageContent
from todoku.queue.dane import Dane
from todoku.queue.model import Route
from todoku.queue.mtasts import MtaSts
from todoku.queue.schedule import Clock
from todoku.queue.steering import RATE_LIMIT_REASONS, classified
from todoku.queue.transport import Channel, OutboundMessage, Transport
from todoku.store.api import QueueEntry, QueueRecipient

log = logging.getLogger("todoku.queue")

MAX_BACKOFF = 3600.0
# An idle connection waits this long for the next message to the same domain before QUIT
# (like Postfix's connection cache): bursts share one connection.
CONNECTION_REUSE_WAIT = 1.0
MAX_ROUTE_REUSE = 3600.0  # seconds, whatever the TTL says


@dataclass
class Job:
    """The recipients of one queue entry that go to one destination in this attempt."""

    entry: QueueEntry
    recipients: tuple[QueueRecipient, ...]
    future: asyncio.Future[list[Outcome]]
    content: bytes | None = None  # the whole message when small (content.READ_WHOLE_LIMIT)
    signature: bytes | None = None  # DKIM header fields made with the read, when signed
    retired: bool = False  # its results finished the entry, removed in the same transaction

    def defer_internal(self, text: str) -> None:
        """Our own failure (a bug, a full disk): unless already answered, every recipient of
        the job is deferred (4.3.0, systemerror) with ``text``, so nothing waits forever."""
        if self.future.done():
            return
        self.future.set_result(
            [
                Outcome(
                    r.address,
                    Verdict.TEMPORARY,
                    PHASE_INTERNAL,
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


@dataclass
class Destination:
    """Everything the runner knows about one recipient domain right now."""

    domain: str
    max_limit: int
    limit: int
    jobs: deque[Job] = field(default_factory=deque)
    active: int = 0
    paused_until: float = 0.0
    backoff: float = 0.0
    last_limit_reply: str = ""
    relay: RelayConfig | None = None  # a smarthost ([[relay]]) rather than a domain's MX
    # RFC 8689 §4.1 "TLS-Required: No": the domain's MX hosts without its MTA-STS or DANE.
    tls_optional: bool = False
    more: asyncio.Event = field(default_factory=asyncio.Event)  # a job was added

    def throttled(self, now: float) -> bool:
        return self.paused_until > now

    def slow_down(self, attempt: Outcome, base: float, now: float) -> None:
        """The remote limits us: one connection, a pause that doubles each time."""
        self.backoff = min(MAX_BACKOFF, max(base, self.backoff * 2))
        self.paused_until = now + self.backoff
        self.limit = 1
        self.last_limit_reply = attempt.describe()
        log.warning(
            "%s limits us (%s): one connection, pausing %s",
            self.domain,
            self.last_limit_reply,
            describe_duration(self.backoff),
        )

    def speed_up(self) -> None:
        if self.limit < self.max_limit or self.backoff:
            self.backoff = 0.0
            self.limit = min(self.max_limit, self.limit + 1)


# (job, its results): records them and answers the job's future (the runner's).
Complete = Callable[[Job, list[Outcome]], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class Deliveries:
    def __init__(
        self,
        resolver: Resolver,
        transport: Transport,
        content: MessageContent,
        *,
        clock: Clock,
        max_connections: int,
        pause_base: float,
        complete: Complete,
        spawn: Spawn,
        detach: Spawn,
        stopping: Callable[[], bool],
        is_self: Callable[[str, str], bool],
        shuffle: routing.Shuffle | None = None,
        relay_transport: Callable[[RelayConfig], Transport] | None = None,
        mta_sts: MtaSts | None = None,
        dane: Dane | None = None,
    ) -> None:
        self.resolver = resolver
        self.transport = transport
        self.content = content
        self.clock = clock
        self.max_connections = max_connections
        self.pause_base = pause_base  # the first pause after a rate limit (the first retry)
        self.complete = complete
        self.spawn = spawn  # a task in the runner's TaskGroup (workers)
        self.detach = detach  # a task outside it (result recording: it must not be cancelled)
        self.stopping = stopping
        self.is_self = is_self
        self.shuffle = shuffle
        self.relay_transport = relay_transport  # None: ``transport`` carries relay hops too
        self.mta_sts = mta_sts  # MTA-STS policies for direct delivery (None: off)
        self.dane = dane  # DANE TLSA checks for direct delivery (None: off)
        self._relay_transports: dict[RelayConfig, Transport] = {}
        self._destinations: dict[str, Destination] = {}
        self._routes: dict[str, tuple[Route, float]] = {}  # domain → (route, reuse until)
        self._route_lookups: dict[str, asyncio.Future[Route]] = {}  # lookups in flight

    def destination(self, domain: str) -> Destination | None:
        return self._destinations.get(domain)

    def relays_changed(self) -> None:
        """Forget the transports of the old ``[[relay]]`` tables (their settings, CA files)."""
        self._relay_transports.clear()

    def submit(
        self, domain: str, job: Job, relay: RelayConfig | None = None, tls_optional: bool = False
    ) -> None:
        tls_optional = tls_optional and relay is None  # a relay is always verified TLS
        key = f"{domain} (TLS-Required: No)" if tls_optional else domain
        destination = self._destinations.get(key)
        if destination is not None and destination.relay != relay:
            # A reload changed this [[relay]]: new jobs go to the new one, while the workers of
            # the old destination finish what they hold on the relay they connected to.
            destination = None
        if destination is None:
            limit = self.max_connections
            destination = Destination(domain, limit, limit, relay=relay, tls_optional=tls_optional)
            self._destinations[key] = destination
        destination.jobs.append(job)
        destination.more.set()
        self._spawn_workers(destination)

    def _spawn_workers(self, destination: Destination) -> None:
        while destination.active < destination.limit and destination.jobs:
            destination.active += 1
            self.spawn(self._worker(destination))

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
        job: Job | None = None
        try:
            if destination.throttled(self.clock.now()):
                await self._defer_throttled(destination)
                return
            if destination.relay is not None:
                route = await routing.relay_route(self.resolver, destination.relay)
            else:
                route = await self._route(destination.domain, destination.tls_optional)
            while not self.stopping():
                if not destination.jobs:
                    if channel is None or not channel.usable or not await self._more(destination):
                        break
                    continue
                if destination.throttled(self.clock.now()):
                    await self._defer_throttled(destination)
                    return
                job = destination.jobs.popleft()
                if route.failure is not None:
                    await self.complete(
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
                            await self.complete(
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
            if destination.jobs and not self.stopping():
                self._spawn_workers(destination)

    async def _route(self, domain: str, tls_optional: bool = False) -> Route:
        """The hops for ``domain``; a resolved route is reused for its DNS answers' TTL
        (at most MAX_ROUTE_REUSE), so new connections to a busy domain ask no DNS questions.
        Failures are never reused: the next attempt asks again. ``tls_optional``: without
        the domain's MTA-STS and DANE policies (RFC 8689 §4.1)."""
        now = self.clock.now()
        key = f"{domain} (TLS-Required: No)" if tls_optional else domain
        cached = self._routes.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        # The workers a flush starts for one domain all arrive here at once: one lookup for
        # them all (py-spy: 20 identical lookups were 3% of the event loop's busy time).
        asking = self._route_lookups.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        asking = asyncio.ensure_future(
            routing.route(
                self.resolver,
                domain,
                is_self=self.is_self,
                mta_sts=None if tls_optional else self.mta_sts,
                dane=None if tls_optional else self.dane,
                **({"shuffle": self.shuffle} if self.shuffle else {}),
            )
        )
        self._route_lookups[key] = asking
        try:
            route = await asyncio.shield(asking)
        finally:
            if self._route_lookups.get(key) is asking:
                del self._route_lookups[key]
        if route.failure is None and route.ttl > 0:
            self._routes[key] = (route, now + min(route.ttl, MAX_ROUTE_REUSE))
        else:
            self._routes.pop(key, None)
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
    ) -> tuple[Channel | None, Outcome | None]:
        """Try every hop in order (RFC 5321 §5.1) until one takes mail."""
        failure: Outcome | None = None
        transport = self._transport_for(destination)
        for index, hop in enumerate(route.hops):
            result = await transport.connect(hop, route.hops[index + 1 :])
            if not isinstance(result, Outcome):
                return result, None
            failure = classified(result)
            log.info("%s: %s", destination.domain, failure.describe())
            if failure.reason in RATE_LIMIT_REASONS:
                destination.slow_down(failure, self.pause_base, self.clock.now())
            elif failure.code is None:
                # Refused or unreachable: fewer parallel connections to this destination.
                destination.limit = max(1, destination.limit // 2)
        if failure is None:
            failure = Outcome(
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
        transport = self._relay_transports.get(relay)
        if transport is None:
            transport = self._relay_transports[relay] = self.relay_transport(relay)
        return transport

    async def _deliver(self, destination: Destination, channel: Channel, job: Job) -> None:
        entry = job.entry
        content = job.content
        prefix = await self.content.prefix(entry, content, job.signature)
        message = OutboundMessage(
            queue_id=entry.id,
            sender=entry.sender,
            recipients=tuple((r.address, r.notify, r.orcpt) for r in job.recipients),
            size=entry.size + len(prefix),
            open_content=(
                (lambda: (prefix, content))
                if content is not None
                else (lambda: self.content.stream(entry.blob_id, prefix))
            ),
            smtputf8=entry.smtputf8,
            ret=entry.ret,
            envid=entry.envid,
            requiretls=entry.requiretls,
        )
        raw = await channel.send(message)
        attempts = [classified(a, entry.attempts + 1) for a in raw]
        # Not awaited: the next message goes out while these results are being committed.
        self.detach(self._complete_soon(job, attempts))
        if any(a.reason in RATE_LIMIT_REASONS and a.verdict is Verdict.TEMPORARY for a in attempts):
            limited = next(a for a in attempts if a.reason in RATE_LIMIT_REASONS)
            destination.slow_down(limited, self.pause_base, self.clock.now())
        elif any(a.verdict is Verdict.DELIVERED for a in attempts):
            destination.speed_up()

    async def _complete_soon(self, job: Job, attempts: list[Outcome]) -> None:
        try:
            await self.complete(job, attempts)
        except Exception:
            # The results could not be written (disk full): the message is tried again later.
            log.exception("%s: recording the delivery results failed", job.entry.id)
            job.defer_internal("internal error recording the delivery")

    async def _defer_throttled(self, destination: Destination) -> None:
        wait = describe_duration(destination.paused_until - self.clock.now())
        while destination.jobs:
            job = destination.jobs.popleft()
            text = (
                f"delivery to {destination.domain} paused for {wait}: the remote limits our "
                f"sending ({destination.last_limit_reply})"
            )
            await self.complete(
                job,
                [
                    Outcome(
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
