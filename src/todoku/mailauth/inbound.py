"""What the MX does with a connection and a message, given the ``[policy]`` configuration:
DNS blocklists and connection rate at connect, message rate at MAIL, greylisting at RCPT, and
SPF + DKIM + DMARC at the end of DATA, recorded in an ``Authentication-Results`` field
(RFC 8601) and acted on by the sender domain's DMARC policy.

Decisions are returned as ``Reply | None`` (None = go on) and ``MessageVerdict``; nothing here
touches sockets or storage. Clients in ``trusted_networks`` (by default loopback: local
programs and the host's own services) skip every check, like Postfix's ``mynetworks``.

DMARC ``p=quarantine`` sets ``MessageVerdict.junk``: local delivery files the message into the
recipient's Junk folder (store.mailboxes), and ``X-Todoku-Junk: yes`` goes next to the
Authentication-Results field for mail programs' filter rules; the field is added only by us, and
any copy the sender put in is removed (see ``strip_forged_fields``) so a sender cannot mark or
unmark its own mail. Delivery decides from the verdict, never from the field.

Memory (issue 12, finding 7): the message is checked where the SMTP session spooled it
(``HeldMessage``: a file), never read whole. Only the header section is held, up to
``MAX_HEADER`` (1 MiB, Exim's ``header_maxsize``; a longer one is refused with 552 5.3.4, since
its forged fields could not otherwise be removed in bounded memory); DKIM hashes the body as it
reads it (``dkim_stream``), and ``write_checked`` copies the body into the store a piece at a
time. Reading and hashing run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from todoku.config.load import PolicyConfig
from todoku.mailauth import dkim, dmarc, dnsbl, spf
from todoku.mailauth.dkim_stream import PIECE, verify_held
from todoku.mailauth.limits import Greylist, RateLimiter, too_many_connections, too_many_messages
from todoku.mailauth.lookup import Lookups
from todoku.proto.smtp.codes import Reply

JUNK_FIELD = b"X-Todoku-Junk: yes\r\n"
_FIELD_LINE = 78
MAX_HEADER = 1024 * 1024
# RFC 3463: 5.3.4 "message too big for system"; the text says which part.
HEADER_TOO_LARGE = Reply(552, "5.3.4", "Message header too large")
_END_OF_HEADER = re.compile(rb"(?:^|\n)\r?\n")  # the empty line (bare LF too, as dkimpy reads it)


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A received message left in a seekable file: its header section read (bounded), its body
    at ``body_at`` still in the file."""

    file: IO[bytes]
    header: bytes  # up to and including the empty line; all of a short message without one
    body_at: int


def hold(file: IO[bytes]) -> HeldMessage | None:
    """Read the header section of the message in ``file``; None when it is longer than
    ``MAX_HEADER`` (no empty line in the first MAX_HEADER octets). Blocking: a worker thread."""
    file.seek(0)
    start = file.read(MAX_HEADER + 1)
    match = _END_OF_HEADER.search(start)
    if match is not None:
        return HeldMessage(file, start[: match.end()], match.end())
    if len(start) <= MAX_HEADER:
        return HeldMessage(file, start, len(start))
    return None


def write_checked(
    message: HeldMessage, prefix: bytes, authserv_id: str, write: Callable[[bytes], None]
) -> None:
    """Our fields, the header without forged ones, then the body copied a piece at a time.
    Blocking: a worker thread."""
    write(prefix + strip_forged_fields(message.header, authserv_id))
    message.file.seek(message.body_at)
    while piece := message.file.read(PIECE):
        write(piece)


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    prefix: bytes  # fields to put in front of the stored message
    reject: Reply | None
    junk: bool
    spf: spf.SpfResult | None
    dkim: tuple[dkim.DkimResult, ...]
    dmarc: dmarc.DmarcResult | None


def dmarc_rejected(result: dmarc.DmarcResult) -> Reply:
    """RFC 7489 §6.6.4 / §10.3: the reply names the policy and what failed."""
    return Reply(
        550,
        "5.7.1",
        f"Message rejected: the DMARC policy of {result.from_domain} says reject and this message"
        f" failed it ({result.failed_checks})",
    )


def _fold(parts: list[str]) -> str:
    """One header field value, folded before each ``;`` part so lines stay short."""
    return ";\r\n\t".join(parts)


def _ptype_value(value: str) -> str:
    """RFC 8601 §2.2: a property value is a value or quoted string; quote what is not a token."""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_results(
    authserv_id: str,
    spf_result: spf.SpfResult | None,
    dkim_results: tuple[dkim.DkimResult, ...],
    dmarc_result: dmarc.DmarcResult | None,
    mail_from: str,
) -> bytes:
    """The RFC 8601 §2.2 field; authserv-id is our host name (§2.5)."""
    parts = [authserv_id]
    if spf_result is not None:
        identity = (
            f"smtp.mailfrom={_ptype_value(mail_from)}"
            if spf_result.identity == "mailfrom"
            else f"smtp.helo={_ptype_value(spf_result.domain)}"
        )
        parts.append(f"spf={spf_result.result} {identity}")
    if dkim_results:
        for result in dkim_results:
            reason = ""
            if result.detail and result.result != "pass":
                reason = f' reason="{result.detail[:60].replace(chr(92), "").replace(chr(34), "")}"'  # RFC 8601 §2.7.1
            parts.append(
                f"dkim={result.result}{reason} header.d={_ptype_value(result.domain)}"
                f" header.s={_ptype_value(result.selector)} header.a={_ptype_value(result.algorithm)}"
            )
    else:
        parts.append("dkim=none")
    if dmarc_result is not None:
        policy = f" policy.dmarc={dmarc_result.policy}" if dmarc_result.record else ""
        parts.append(
            f"dmarc={dmarc_result.result}{policy} header.from={_ptype_value(dmarc_result.from_domain)}"
        )
    return f"Authentication-Results: {_fold(parts)}\r\n".encode()


_FORGED = re.compile(
    rb"^(?:authentication-results|x-todoku-junk)[ \t]*:.*?\r?\n(?:[ \t].*?\r?\n)*",
    re.IGNORECASE | re.MULTILINE,
)


def strip_forged_fields(message: bytes, authserv_id: str) -> bytes:
    """RFC 8601 §5: remove Authentication-Results fields that claim to be ours (a sender could
    otherwise forge a pass), and any X-Todoku-Junk field, from the header block only."""
    end = message.find(b"\r\n\r\n")
    head, body = (message, b"") if end < 0 else (message[: end + 2], message[end + 2 :])
    ours = authserv_id.lower().encode()

    def keep(match: re.Match[bytes]) -> bytes:
        text = match.group(0)
        name, _, value = text.partition(b":")
        if name.strip().lower() == b"x-todoku-junk":
            return b""
        server = value.strip().split(b";", 1)[0].split()[0].lower() if value.strip() else b""
        return b"" if server == ours else text

    return _FORGED.sub(keep, head) + body


@dataclass
class InboundPolicy:
    settings: PolicyConfig
    lookups: Lookups
    hostname: str
    clock: Callable[[], float] | None = None
    sample: Callable[[], float] = random.random
    _trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    _connections: RateLimiter = field(init=False)
    _messages: RateLimiter = field(init=False)
    _greylist: Greylist | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._trusted = tuple(
            ipaddress.ip_network(n, strict=False) for n in self.settings.trusted_networks
        )
        kwargs = {"clock": self.clock} if self.clock else {}
        self._connections = RateLimiter(self.settings.max_connections_per_minute, **kwargs)  # type: ignore[arg-type]
        self._messages = RateLimiter(self.settings.max_messages_per_minute, **kwargs)  # type: ignore[arg-type]
        if self.settings.greylist:
            self._greylist = Greylist(self.settings.greylist_delay, **kwargs)  # type: ignore[arg-type]

    def trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    @property
    def checks_content(self) -> bool:
        return self.settings.authentication

    async def on_connect(self, ip: str) -> Reply | None:
        if self.trusted(ip):
            return None
        if not self._connections.allow(ip):
            return too_many_connections(ip, self.settings.max_connections_per_minute)
        listing = await dnsbl.first_listing(self.lookups, ip, self.settings.dnsbl)
        if listing is not None:
            return dnsbl.blocked_reply(ip, listing.zone)
        return None

    def on_mail(self, ip: str) -> Reply | None:
        if self.trusted(ip) or self._messages.allow(ip):
            return None
        return too_many_messages(ip, self.settings.max_messages_per_minute)

    def on_rcpt(self, ip: str, sender: str, recipient: str) -> Reply | None:
        if self._greylist is None or self.trusted(ip):
            return None
        return self._greylist.check(ip, sender, recipient)

    async def on_message(
        self, ip: str, helo: str, mail_from: str, content: bytes | HeldMessage
    ) -> MessageVerdict:
        """SPF, DKIM and DMARC for one received message (as the client sent it: in memory, or
        held in a file, which is then read in pieces and never whole)."""
        message = hold(io.BytesIO(content)) if isinstance(content, bytes) else content
        if message is None:
            return MessageVerdict(b"", HEADER_TOO_LARGE, False, None, (), None)
        spf_task = spf.check_mail_from(self.lookups, ip, mail_from, helo)
        dkim_task = self._verify_dkim(message)
        spf_result, dkim_results = await asyncio.gather(spf_task, dkim_task)
        passes = [r.domain for r in dkim_results if r.result == "pass"]
        from_domain = dkim.header_from_domain(message.header)
        failure = self._describe_failure(spf_result, dkim_results)
        dmarc_result = await dmarc.evaluate(
            self.lookups,
            from_domain,
            spf_result.result,
            spf_result.domain,
            passes,
            failure,
            self.sample,
        )
        prefix = authentication_results(
            self.hostname, spf_result, dkim_results, dmarc_result, mail_from
        )
        reject = None
        junk = False
        if dmarc_result.result == dmarc.FAIL:
            if dmarc_result.applied == "reject" and self.settings.dmarc_reject:
                reject = dmarc_rejected(dmarc_result)
            elif dmarc_result.applied in ("reject", "quarantine"):
                junk = True
                prefix += JUNK_FIELD
        return MessageVerdict(prefix, reject, junk, spf_result, dkim_results, dmarc_result)

    @staticmethod
    def _describe_failure(
        spf_result: spf.SpfResult, dkim_results: tuple[dkim.DkimResult, ...]
    ) -> str:
        spf_text = f"SPF {spf_result.result} for {spf_result.domain or 'no domain'}"
        if not dkim_results:
            dkim_text = "no DKIM signature"
        else:
            dkim_text = ", ".join(f"DKIM {r.result} for {r.domain}" for r in dkim_results)
        return f"{spf_text}; {dkim_text}; neither aligned with the From domain"

    async def _verify_dkim(self, message: HeldMessage) -> tuple[dkim.DkimResult, ...]:
        pairs = dkim.signature_keys(message.header)[:5]  # a bounded amount of work per message
        if not pairs:
            return ()
        names = sorted({f"{s}._domainkey.{d}".lower() for d, s in pairs if d and s})
        answers = await asyncio.gather(*(self.lookups.txt(n) for n in names))
        records: dict[str, list[str] | None] = {}
        for name, answer in zip(names, answers, strict=True):
            records[name] = None if answer.status.is_temporary else list(answer.records)

        def verify() -> list[dkim.DkimResult]:  # in a worker thread: file reads and hashing
            message.file.seek(message.body_at)
            return verify_held(message.header, message.file, records)

        running = asyncio.get_running_loop().run_in_executor(None, verify)
        try:
            results = await asyncio.shield(running)
        except asyncio.CancelledError:
            # Out of time (the caller's bound on the DNS work): the thread cannot be stopped,
            # and the caller reads the same file next, so wait until it has let go of it.
            await asyncio.wait([running])
            raise
        return tuple(results[:5])
