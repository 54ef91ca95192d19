"""MTA-STS (RFC 8461): which MX hosts of a domain may take its mail, and only over verified TLS.

A domain publishes ``_mta-sts.<domain>`` TXT ``v=STSv1; id=...`` (§3.1) and a policy at
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (§3.2, §3.3)::

    version: STSv1
    mode: enforce            # enforce | testing | none
    mx: mail.example.com     # one line per allowed MX host; "*.example.net" matches one label
    max_age: 604800          # seconds the policy may be cached (at most 31557600)

``MtaSts.lookup`` answers "which policy applies to this domain now": the cached one while its
record id is unchanged, a freshly fetched one when the id changed or the cached policy is past
half its max_age, and the cached one again whenever the TXT record or the fetch fails (§5.1).
The routing layer (``queue.routing``) applies the answer to the MX hops.

Invariants:
- A policy is only ever read from HTTPS with a certificate verified for ``mta-sts.<domain>``;
  redirects are not followed, only status 200 counts, and at most 64 KiB are read (§3.3).
- The cache lives on disk (``<data_dir>/mta-sts/<domain>.json``), so a restart does not forget
  a policy; an entry is used only until ``fetched_at + max_age``, max_age bounded by §3.2.
- Fetch failures never delay mail: they are retried after ``RETRY_FETCH_AFTER`` at the
  earliest, and meanwhile the cached policy (or none) applies.
- Refreshing happens when a delivery asks for the policy (no background task): a domain that
  receives mail keeps its policy fresh; one that does not needs none.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from todoku.dns.resolver import DnsStatus, Resolver, TxtResolver
from todoku.queue import tlsrpt
from todoku.queue.schedule import Clock, SystemClock

log = logging.getLogger("todoku.delivery")

ENFORCE = "enforce"
TESTING = "testing"
NONE = "none"
MODES = (ENFORCE, TESTING, NONE)

MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 §3.3: senders may limit the policy body (64 KiB suggested)
MAX_MAX_AGE = 31_557_600  # RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year)
FETCH_TIMEOUT = 30.0  # seconds for the whole HTTPS fetch (RFC 8461 §3.3 suggests about a minute)
RETRY_FETCH_AFTER = 300.0  # after a failed fetch, no new attempt for this long (per domain)
MAX_ADDRESSES = 4  # addresses of mta-sts.<domain> tried per fetch
# Fetches run on threads of their own, never the event loop's default executor: the hosts are
# chosen by whoever can make us send mail (a report to a sender at any domain), and a silent one
# holds a thread for FETCH_TIMEOUT; the default executor (cpu_count + 4 threads) also serves
# POP3 logins, message acceptance and queue reads, which must not wait behind them.
FETCH_THREADS = 16
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"

_RECORD_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # RFC 8461 §3.1: sts-id = 1*32(ALPHA / DIGIT)
_FIELD_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_HOSTNAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


class PolicyError(Exception):
    """A record or policy that does not follow RFC 8461's syntax."""


class FetchError(Exception):
    """The policy could not be fetched (DNS, connection, certificate, HTTP status, size)."""


class CertificateError(FetchError):
    """The policy server's certificate is not valid for ``mta-sts.<domain>`` (RFC 8461 §3.3)."""


def result_type(exc: FetchError | PolicyError) -> str:
    """The TLS-RPT result type (RFC 8460 §4.3.2.2) of a policy that could not be had."""
    if isinstance(exc, PolicyError):
        return tlsrpt.STS_POLICY_INVALID
    if isinstance(exc, CertificateError):
        return tlsrpt.STS_WEBPKI_INVALID
    return tlsrpt.STS_POLICY_FETCH_ERROR


def ascii_domain(domain: str) -> str | None:
    """The domain as lower-case A-labels without a trailing dot, or None when it is no
    host name (an address literal, or text IDNA cannot encode)."""
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if len(domain) > 253 or not _HOSTNAME.fullmatch(domain):
        return None
    return domain


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str
    mx: tuple[str, ...]  # lower-case patterns: "mail.example.com" or "*.example.net"
    max_age: int

    def matches(self, host: str) -> bool:
        """RFC 8461 §4.1: a host matches a pattern literally, or "*.rest" when the host is one
        label followed by "rest" (so "*.example.net" matches neither "example.net" nor
        "a.b.example.net")."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, dot, rest = host.partition(".")
                if label and dot and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_record(text: str) -> str | None:
    """The id of an MTA-STS TXT record; None if the text is not one (RFC 8461 §3.1: records
    that do not begin with "v=STSv1;" are discarded). Raises PolicyError for an STSv1 record
    whose fields are malformed."""
    if not text.startswith("v=STSv1;"):
        return None
    record_id: str | None = None
    for part in text.split(";")[1:]:
        part = part.strip(" \t")
        if not part:
            continue  # a trailing ";" is allowed
        key, eq, value = part.partition("=")
        if not eq or not _FIELD_KEY.fullmatch(key):
            raise PolicyError(f"malformed field {part[:40]!r}")
        if key == "id" and record_id is None:
            if not _RECORD_ID.fullmatch(value):
                raise PolicyError(f"malformed id {value[:40]!r}")
            record_id = value
    if record_id is None:
        raise PolicyError("no id field")
    return record_id


def parse_policy(text: str) -> Policy:
    """RFC 8461 §3.2: "key: value" lines ending in CRLF or LF; unknown keys are ignored; the
    first occurrence of a repeated key counts (mx may repeat)."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip(" \t")
        if not colon or not _FIELD_KEY.fullmatch(key):
            raise PolicyError(f"malformed line {line[:60]!r}")
        if key == "mx":
            pattern = value.lower().rstrip(".")
            plain = pattern.removeprefix("*.")
            if not _HOSTNAME.fullmatch(plain):
                raise PolicyError(f"malformed mx pattern {value[:60]!r}")
            mx.append(pattern)
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError(f"version is {fields.get('version')!r}, not STSv1")
    mode = fields.get("mode")
    if mode not in MODES:
        raise PolicyError(f"mode is {mode!r}, not enforce, testing or none")
    max_age_text = fields.get("max_age", "")
    # RFC 8461 §3.2: sts-policy-max-age-value = 1*10(DIGIT)
    if not max_age_text.isascii() or not max_age_text.isdigit() or len(max_age_text) > 10:
        raise PolicyError(f"max_age is {max_age_text[:20]!r}, not a number of seconds")
    if mode != NONE and not mx:
        raise PolicyError(f"mode {mode} without any mx line")
    return Policy(mode, tuple(mx), min(int(max_age_text), MAX_MAX_AGE))


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    domain: str
    id: str  # the TXT record's id when the policy was fetched
    policy: Policy
    fetched_at: float

    @property
    def expires(self) -> float:
        return self.fetched_at + self.policy.max_age

    def policy_strings(self) -> tuple[str, ...]:
        """The policy's fields as lines (RFC 8460 §4.4 "policy-string" for type sts)."""
        policy = self.policy
        return (
            "version: STSv1",
            f"mode: {policy.mode}",
            *(f"mx: {mx}" for mx in policy.mx),
            f"max_age: {policy.max_age}",
        )

    def describe(self) -> str:
        policy = self.policy
        mx = f", mx: {', '.join(policy.mx)}" if policy.mx else ""
        return f"MTA-STS policy of {self.domain} (mode {policy.mode}{mx})"

    def to_json(self) -> str:
        policy = self.policy
        return json.dumps(
            {
                "domain": self.domain,
                "id": self.id,
                "fetched_at": self.fetched_at,
                "mode": policy.mode,
                "mx": list(policy.mx),
                "max_age": policy.max_age,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> CachedPolicy:
        data = json.loads(text)
        mode, mx, max_age = data["mode"], data["mx"], data["max_age"]
        if (
            mode not in MODES
            or not isinstance(mx, list)
            or not all(isinstance(m, str) for m in mx)
            or not isinstance(max_age, int)
            or not isinstance(data["id"], str)
            or not isinstance(data["domain"], str)
        ):
            raise ValueError("malformed cache entry")
        policy = Policy(mode, tuple(mx), min(max_age, MAX_MAX_AGE))
        return cls(data["domain"], data["id"], policy, float(data["fetched_at"]))


def cache_directory(data_dir: Path) -> Path:
    """Where fetched policies are kept between restarts."""
    return data_dir / "mta-sts"


class PolicyCache:
    """One JSON file per policy domain under ``directory``, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, domain: str) -> Path:
        return self.directory / f"{domain}.json"  # ``domain`` passed ascii_domain: no "/" or ".."

    def load(self, domain: str) -> CachedPolicy | None:
        try:
            with self._path(domain).open("rb") as handle:
                raw = handle.read(MAX_POLICY_SIZE)
            cached = CachedPolicy.from_json(raw.decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("MTA-STS cache for %s unreadable (%s); ignored", domain, exc)
            return None
        return cached if cached.domain == domain else None

    def store(self, cached: CachedPolicy) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(cached.domain)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(cached.to_json(), encoding="utf-8")
        os.replace(temporary, path)


def describe_cached(directory: Path, domain: str, now: float) -> str | None:
    """For ``todoku queue show``: the cached policy that applies to ``domain``, if any."""
    name = ascii_domain(domain)
    if name is None:
        return None
    cached = PolicyCache(directory).load(name)
    if cached is None or cached.expires <= now or cached.policy.mode == NONE:
        return None
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(cached.expires))
    return f"{cached.describe()}, cached until {until}"


class PolicyFetcher(Protocol):
    async def fetch(self, domain: str) -> str:
        """The policy text served for ``domain``; FetchError when there is none to be had."""
        ...


class HttpsPolicyFetcher:
    """GET ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` with ``http.client`` on a worker
    thread, the host's addresses asked of our resolver (the one delivery uses).

    ``ca_file`` adds a trusted CA and ``port`` replaces 443: both exist for tests against a
    loopback server with a test CA; production uses neither. The threads are the fetcher's own
    (``FETCH_THREADS``), so slow policy servers only ever delay other policy fetches.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        ca_file: str | None = None,
        port: int = 443,
        timeout: float = FETCH_TIMEOUT,
        limit: int = MAX_POLICY_SIZE,
    ) -> None:
        self.resolver = resolver
        self.port = port
        self.timeout = timeout
        self.limit = limit
        # RFC 8461 §3.3: the certificate must be valid for mta-sts.<domain> (PKIX, RFC 6125).
        self._context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file:
            self._context.load_verify_locations(cafile=ca_file)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._threads = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="todoku-mta-sts")

    async def fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        answer = await self.resolver.addresses(host)
        if not answer.records:
            raise FetchError(f"{host} has no address ({answer.detail or answer.status.value})")
        problems = []
        certificates = 0  # addresses whose certificate was refused
        for ip in answer.records[:MAX_ADDRESSES]:
            sockets: list[socket.socket] = []
            try:
                async with asyncio.timeout(self.timeout):
                    return await asyncio.get_running_loop().run_in_executor(
                        self._threads, self._get, host, ip, sockets
                    )
            except TimeoutError:
                problems.append(f"{ip}: no complete answer in {self.timeout:g} s")
            except FetchError as exc:
                problems.append(f"{ip}: {exc}")
                certificates += isinstance(exc, CertificateError)
            finally:
                for sock in sockets:  # wakes a worker still blocked on a slow server
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        error = CertificateError if certificates == len(problems) else FetchError
        raise error(f"https://{host}{WELL_KNOWN_PATH}: {'; '.join(problems)}")

    def _get(self, host: str, ip: str, sockets: list[socket.socket]) -> str:
        port = f":{self.port}" if self.port != 443 else ""
        request = (
            f"GET {WELL_KNOWN_PATH} HTTP/1.1\r\nHost: {host}{port}\r\n"
            "User-Agent: todoku\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        try:
            raw = socket.create_connection((ip, self.port), timeout=self.timeout)
            sockets.append(raw)
            with raw, self._context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(request)
                response = http.client.HTTPResponse(tls, method="GET")
                response.begin()  # status line and header: bounded by http.client's limits
                if response.status != 200:
                    # RFC 8461 §3.3: only 200 counts; 3xx redirects MUST NOT be followed.
                    raise FetchError(f"HTTP status {response.status} {response.reason}")
                body = response.read(self.limit + 1)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(
                f"certificate not valid for {host}: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise FetchError(str(exc) or type(exc).__name__) from None
        if len(body) > self.limit:
            raise FetchError(f"policy larger than {self.limit} bytes")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise FetchError("policy is not UTF-8 text") from None


@dataclass(frozen=True, slots=True)
class PolicyLookup:
    """The policy that applies now (None: deliver as if the domain had no MTA-STS) and how it
    was found, for the log."""

    policy: CachedPolicy | None
    note: str


class MtaSts:
    """Policy discovery and caching (RFC 8461 §3, §5.1) for the delivery routes."""

    def __init__(
        self,
        resolver: TxtResolver,
        fetcher: PolicyFetcher,
        cache: PolicyCache,
        clock: Clock | None = None,
    ) -> None:
        self.resolver = resolver
        self.fetcher = fetcher
        self.cache = cache
        self.clock = clock or SystemClock()
        self._no_fetch_until: dict[str, float] = {}
        # TLS reporting (queue.tlsrpt): hears (domain, RFC 8460 result type, detail, the cached
        # policy that applies or None) for each policy that could not be fetched or parsed.
        self.on_problem: Callable[[str, str, str, CachedPolicy | None], None] | None = None

    async def _record_id(self, domain: str) -> tuple[str | None, str]:
        answer = await self.resolver.txt(f"_mta-sts.{domain}")
        if answer.status is not DnsStatus.OK:
            detail = answer.detail or answer.status.value
            return None, f"no _mta-sts.{domain} TXT record ({detail})"
        ids = []
        for text in answer.records:
            try:
                record_id = parse_record(text)
            except PolicyError as exc:
                return None, f"_mta-sts.{domain} TXT record invalid: {exc}"
            if record_id is not None:
                ids.append(record_id)
        if len(ids) != 1:
            # RFC 8461 §3.1: not exactly one STSv1 record: the domain has no MTA-STS.
            return None, f"{len(ids)} STSv1 records at _mta-sts.{domain}"
        return ids[0], ""

    async def lookup(self, domain: str) -> PolicyLookup:
        name = ascii_domain(domain)
        if name is None:
            return PolicyLookup(None, f"{domain}: not a domain name, no MTA-STS")
        now = self.clock.now()
        cached = await asyncio.to_thread(self.cache.load, name)
        if cached is not None and cached.expires <= now:
            cached = None
        record_id, problem = await self._record_id(name)
        if record_id is None:
            if cached is not None:
                # RFC 8461 §5.1: no live policy, but an unexpired cached one: it applies.
                return PolicyLookup(cached, f"{problem}; the cached policy applies")
            return PolicyLookup(None, problem)
        fresh = cached is not None and now < cached.fetched_at + cached.policy.max_age / 2
        if cached is not None and cached.id == record_id and fresh:
            return PolicyLookup(cached, "cached")
        if now < self._no_fetch_until.get(name, 0.0):
            note = "the last policy fetch failed moments ago"
            return PolicyLookup(cached, note + ("; the cached policy applies" if cached else ""))
        try:
            policy = parse_policy(await self.fetcher.fetch(name))
        except (FetchError, PolicyError) as exc:
            self._no_fetch_until[name] = now + RETRY_FETCH_AFTER
            if self.on_problem is not None:
                self.on_problem(name, result_type(exc), str(exc), cached)
            if cached is not None:
                # RFC 8461 §5.1: a fetch failure does not void an unexpired cached policy.
                note = f"policy fetch failed ({exc}); the cached policy applies"
            else:
                # RFC 8461 §5.1: no policy and nothing cached: deliver as without MTA-STS.
                note = f"policy fetch failed ({exc}); delivering as if {name} had no policy"
            log.warning("MTA-STS %s: %s", name, note)
            return PolicyLookup(cached, note)
        self._no_fetch_until.pop(name, None)
        entry = CachedPolicy(name, record_id, policy, now)
        try:
            await asyncio.to_thread(self.cache.store, entry)
        except OSError as exc:
            log.warning("MTA-STS %s: cannot write the cache (%s)", name, exc)
        log.info(
            "MTA-STS %s: fetched %s (id %s, max_age %d)",
            name,
            entry.describe(),
            record_id,
            policy.max_age,
        )
        return PolicyLookup(entry, "fetched")
