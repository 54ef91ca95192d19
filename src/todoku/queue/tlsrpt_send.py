"""TLS reporting (RFC 8460) at work: recording each outbound TLS session, and once a day
sending each policy domain that asks for it (``_smtp._tls`` TXT) the report of the day before.

Recording: the SMTP transport calls ``observe_hop`` where a session's TLS outcome is known
(``queue.transport``), MTA-STS calls ``policy_problem`` when a policy cannot be fetched or
parsed (``queue.mtasts``). Both only append to a list in memory; ``flush`` (from ``run`` every
``FLUSH_EVERY`` seconds, and at shutdown) appends the lines to ``<data_dir>/tlsrpt/<day>.jsonl``
and fsyncs. A crash loses at most the last ``FLUSH_EVERY`` seconds of counts, never mail.

Reporting: ``tick`` (from ``run``; tests call it after moving their clock) takes every day file
whose UTC day ended at least ``SEND_AFTER`` ago, groups its sessions by policy domain, asks DNS
for each domain's TLSRPT record, and sends the JSON report (gzip) to each rua URI: ``mailto:``
through todoku's own queue (DKIM-signed with the signer the queue uses for local senders),
``https:`` as one POST with bounded timeouts (RFC 8460 §5.4; a failed POST is logged, not
retried). Each domain done is appended to ``<day>.done`` (fsynced), so a crash or a domain whose
record could not be looked up (a DNS failure, tried again for up to
``GIVE_UP_AFTER``, every ``RETRY_EVERY``) sends no other domain's report twice; a crash between queueing one report
and noting it sends that one again, with the same report-id, so its receiver can tell. When all
are done the day file is renamed ``<day>.sent`` (kept ``KEEP_DAYS`` for a look, then deleted).

Invariants: nothing here can delay or fail a delivery (recording never raises, never blocks);
what is read back is bounded (``MAX_DAY_FILE`` bytes, ``MAX_DOMAINS`` domains per day), and
every report is sized by ``tlsrpt.MAX_POLICIES`` and ``tlsrpt.MAX_DETAILS``.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from todoku.dns.resolver import DnsStatus, Resolver, TxtResolver
from todoku.queue import tlsrpt
from todoku.queue.model import Hop
from todoku.queue.mtasts import CachedPolicy
from todoku.queue.schedule import Clock, SystemClock

log = logging.getLogger("todoku.tlsrpt")

FLUSH_EVERY = 30.0  # seconds between appends to the day file
SEND_AFTER = 900.0  # seconds after a UTC day ends before its reports go out
GIVE_UP_AFTER = 86400.0  # seconds after a day ends when reports still not sent are dropped
RETRY_EVERY = 900.0  # seconds between tries of a day's reports that could not go yet
KEEP_DAYS = 7  # days a sent day file is kept
MAX_DAY_FILE = 64 * 1024 * 1024  # bytes of one day file read back; the rest is ignored
MAX_DOMAINS = 2000  # policy domains reported for one day
MAX_SOURCES = 1024  # remembered source addresses
POST_TIMEOUT = 30.0  # seconds for one HTTPS report submission, all included
MAX_RESPONSE = 64 * 1024  # bytes of an HTTPS answer read
MAX_ADDRESSES = 2  # addresses of an https rua host tried
CONTENT_TYPE = "application/tlsrpt+gzip"  # RFC 8460 §5.2, §6.4

# (sender, recipients, message) → queued for delivery; built by queue.setup over the store.
Enqueue = Callable[[str, tuple[str, ...], bytes], Awaitable[None]]


class PostError(Exception):
    """An HTTPS report submission that did not get a 2xx answer."""


class Poster(Protocol):
    async def post(self, url: str, body: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ReporterSettings:
    submitter: tlsrpt.Submitter
    sender: str  # envelope sender and From of report mail
    hostname: str  # for Message-ID


class HttpsReportPoster:
    """POST a report to an ``https:`` rua (RFC 8460 §5.4): the host's addresses from our
    resolver, the certificate verified for the host, no redirects, 2xx means taken. Runs
    ``http.client`` on threads of its own, each submission bounded by ``timeout``. ``ca_file``
    adds a trusted CA (tests)."""

    def __init__(
        self, resolver: Resolver, *, ca_file: str | None = None, timeout: float = POST_TIMEOUT
    ) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self._context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file:
            self._context.load_verify_locations(cafile=ca_file)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="todoku-tlsrpt")

    async def post(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme.lower() != "https" or not host:
            raise PostError(f"{url[:100]}: not an https URL")
        port = parts.port or 443
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
        except ValueError:
            answer = await self.resolver.addresses(host)
            if not answer.records:
                raise PostError(f"{host} has no address ({answer.detail or answer.status.value})")
            addresses = answer.records[:MAX_ADDRESSES]
        problems = []
        for ip in addresses:
            sockets: list[socket.socket] = []
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.get_running_loop().run_in_executor(
                        self._threads, self._post, host, ip, port, target, body, sockets
                    )
                return
            except TimeoutError:
                problems.append(f"{ip}: no answer in {self.timeout:g} s")
            except PostError as exc:
                problems.append(f"{ip}: {exc}")
            finally:
                for sock in sockets:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        raise PostError(f"{url[:100]}: {'; '.join(problems)}")

    def _post(
        self,
        host: str,
        ip: str,
        port: int,
        target: str,
        body: bytes,
        sockets: list[socket.socket],
    ) -> None:
        shown_port = f":{port}" if port != 443 else ""
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {host}{shown_port}\r\nUser-Agent: todoku\r\n"
            f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii", "replace")
        try:
            raw = socket.create_connection((ip, port), timeout=self.timeout)
            sockets.append(raw)
            with raw, self._context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(head + body)
                response = http.client.HTTPResponse(tls, method="POST")
                response.begin()
                response.read(MAX_RESPONSE)
        except ssl.SSLCertVerificationError as exc:
            raise PostError(f"certificate not valid for {host}: {exc.verify_message}") from None
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise PostError(str(exc) or type(exc).__name__) from None
        if not 200 <= response.status < 300:
            raise PostError(f"HTTP status {response.status} {response.reason}"[:200])


class TlsReporter:
    """Records TLS sessions and sends the daily reports (module docstring)."""

    def __init__(
        self,
        directory: Path,
        settings: ReporterSettings,
        resolver: TxtResolver,
        enqueue: Enqueue,
        poster: Poster,
        *,
        signer: Callable[[bytes, str], bytes] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.resolver = resolver
        self.enqueue = enqueue
        self.poster = poster
        self.signer = signer
        self.clock = clock or SystemClock()
        self._pending: list[tlsrpt.TlsSession] = []
        self._sources: dict[str, str] = {}
        self._flushing = asyncio.Lock()
        self._retry_at: dict[str, float] = {}  # day → when its unfinished domains are retried

    # ------------------------------------------------------------------ recording

    def observe_hop(self, hop: Hop, result: str, reason_code: str = "") -> None:
        """The transport's hook: a session with ``hop`` came to ``result`` ("" = success)."""
        if not (hop.domain or hop.tls_policy):
            return  # a relay or an address literal: no policy domain to report to
        source = self._source_ip(hop.ip)
        self.record(tlsrpt.session_for(hop, result, reason_code, source, self.clock.now()))

    def policy_problem(
        self, domain: str, result: str, detail: str, cached: CachedPolicy | None
    ) -> None:
        """MTA-STS's hook: ``domain``'s policy could not be fetched or parsed."""
        self.record(
            tlsrpt.TlsSession(
                domain=domain,
                policy_type=tlsrpt.STS if cached is not None else tlsrpt.NO_POLICY,
                result=result,
                reason_code=detail[: tlsrpt.MAX_TEXT],
                policy_strings=cached.policy_strings() if cached is not None else (),
                policy_mx=cached.policy.mx if cached is not None else (),
                at=self.clock.now(),
            )
        )

    def record(self, session: tlsrpt.TlsSession) -> None:
        self._pending.append(session)

    def _source_ip(self, ip: str) -> str:
        """Our address towards ``ip`` (RFC 8460 "sending-mta-ip"), as the routing table picks
        it: a UDP socket's connect sends nothing."""
        found = self._sources.get(ip)
        if found is not None:
            return found
        try:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((ip, 25))
                found = str(probe.getsockname()[0])
        except (OSError, ValueError):
            found = ""
        if len(self._sources) < MAX_SOURCES:
            self._sources[ip] = found
        return found

    async def flush(self) -> None:
        """Append what was recorded to the day files, fsynced."""
        async with self._flushing:
            pending, self._pending = self._pending, []
            if pending:
                await asyncio.to_thread(self._append, pending)

    def _append(self, sessions: list[tlsrpt.TlsSession]) -> None:
        by_day: dict[str, list[str]] = {}
        for session in sessions:
            by_day.setdefault(tlsrpt.day_of(session.at), []).append(session.to_json() + "\n")
        self.directory.mkdir(parents=True, exist_ok=True)
        for day, lines in by_day.items():
            fd = os.open(
                self.directory / f"{day}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            try:
                os.write(fd, "".join(lines).encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ reporting

    async def run(self) -> None:
        """Flush and look for due reports every FLUSH_EVERY seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("TLS reports: the daily run failed; trying again later")
            await asyncio.sleep(FLUSH_EVERY)

    async def tick(self) -> list[str]:
        """Send the reports of every finished day not yet reported; the days done."""
        await self.flush()
        now = self.clock.now()
        done = []
        for path in sorted(await asyncio.to_thread(self._day_files)):
            day = path.name.removesuffix(".jsonl")
            try:
                _, end = tlsrpt.day_bounds(day)
            except ValueError:
                continue
            if now < end + 1 + SEND_AFTER or now < self._retry_at.get(day, 0.0):
                continue
            finished = await self._report_day(day, path)
            if not finished and now < end + 1 + GIVE_UP_AFTER:
                self._retry_at[day] = now + RETRY_EVERY  # the domains left, then
                continue
            self._retry_at.pop(day, None)
            await asyncio.to_thread(self._retire_day, path, day)
            done.append(day)
        await asyncio.to_thread(self._prune, now)
        return done

    def _retire_day(self, path: Path, day: str) -> None:
        os.replace(path, path.with_name(f"{day}.sent"))
        path.with_name(f"{day}.done").unlink(missing_ok=True)

    def _done_domains(self, day: str) -> set[str]:
        try:
            text = (self.directory / f"{day}.done").read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        return set(text.split())

    def _mark_done(self, day: str, domain: str) -> None:
        fd = os.open(self.directory / f"{day}.done", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{domain}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _day_files(self) -> list[Path]:
        try:
            return [p for p in self.directory.iterdir() if p.name.endswith(".jsonl")]
        except FileNotFoundError:
            return []

    def _prune(self, now: float) -> None:
        for path in self.directory.glob("*.sent") if self.directory.is_dir() else ():
            try:
                _, end = tlsrpt.day_bounds(path.name.removesuffix(".sent"))
            except ValueError:
                continue
            if now - end > KEEP_DAYS * 86400:
                path.unlink(missing_ok=True)

    def _read_day(self, path: Path) -> dict[str, list[tlsrpt.TlsSession]]:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DAY_FILE + 1)
        if len(raw) > MAX_DAY_FILE:
            log.warning(
                "TLS reports: %s is larger than %d bytes; the rest ignored", path, MAX_DAY_FILE
            )
            raw = raw[:MAX_DAY_FILE]
        by_domain: dict[str, list[tlsrpt.TlsSession]] = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            session = tlsrpt.TlsSession.from_json(line)
            if session is None:
                continue  # a torn line (crash while appending)
            sessions = by_domain.get(session.domain)
            if sessions is None:
                if len(by_domain) >= MAX_DOMAINS:
                    continue
                sessions = by_domain[session.domain] = []
            sessions.append(session)
        return by_domain

    async def _report_day(self, day: str, path: Path) -> bool:
        """Report each domain of ``day`` not yet done; True when none is left to try again."""
        by_domain = await asyncio.to_thread(self._read_day, path)
        done = await asyncio.to_thread(self._done_domains, day)
        finished = True
        for domain, sessions in sorted(by_domain.items()):
            if domain in done:
                continue
            try:
                if not await self._report(day, domain, sessions):
                    finished = False
                    continue
            except Exception:
                log.exception("TLS report for %s (%s) failed; trying again later", domain, day)
                finished = False
                continue
            await asyncio.to_thread(self._mark_done, day, domain)
        return finished

    async def _report(self, day: str, domain: str, sessions: list[tlsrpt.TlsSession]) -> bool:
        """Send ``domain``'s report if it asks for one; False to try again later (its TLSRPT
        record could not be looked up now)."""
        name = tlsrpt.record_name(domain)
        answer = await self.resolver.txt(name)
        if answer.status is not DnsStatus.OK:
            if answer.status.is_temporary:
                log.warning(
                    "TLS report for %s (%s) not sent yet: %s TXT lookup failed (%s)",
                    domain,
                    day,
                    name,
                    answer.detail or answer.status.value,
                )
                return False
            return True  # no record: the domain takes no reports (RFC 8460 §3)
        uris = tlsrpt.parse_record(answer.records)
        if uris is None:
            return True
        submitter = self.settings.submitter
        report = tlsrpt.gzipped(tlsrpt.build_report(day, domain, sessions, submitter))
        addresses = tuple(a for a in map(tlsrpt.mailto_address, uris) if a is not None)
        for uri in uris:
            if uri.lower().startswith("https:"):
                try:
                    await self.poster.post(uri, report)
                    log.info("TLS report for %s (%s) posted to %s", domain, day, uri)
                except PostError as exc:
                    log.warning("TLS report for %s (%s) not taken: %s", domain, day, exc)
        if addresses:
            await self._mail(day, domain, addresses, report)
        return True

    async def _mail(self, day: str, domain: str, addresses: tuple[str, ...], report: bytes) -> None:
        settings = self.settings
        message = tlsrpt.compose_email(
            day=day,
            domain=domain,
            submitter=settings.submitter,
            sender=settings.sender,
            recipients=addresses,
            report=report,
            hostname=settings.hostname,
            now=self.clock.now(),
        )
        if self.signer is not None:
            signer = self.signer
            prefix = await asyncio.to_thread(_sign, signer, message, settings.sender)
            message = prefix + message
        await self.enqueue(settings.sender, addresses, message)
        log.info("TLS report for %s (%s) queued to %s", domain, day, ", ".join(addresses))


def _sign(signer: Callable[[bytes, str], bytes], message: bytes, sender: str) -> bytes:
    try:
        return signer(message, sender)
    except Exception:
        log.exception("TLS report: DKIM signing failed; sending unsigned")
        return b""
