"""How a message reaches a hop. The runner talks to a ``Transport`` (after httpx): the real one
speaks SMTP through ``net.smtp_client``; tests pass ``MockTransport(handler)``.

Failure taxonomy an Outcome (todoku.outcome) can carry (phase → meaning):
  connect/greeting/ehlo/helo/starttls  the hop could not take mail at all (try the next hop)
  mail/rcpt/data/end-of-data           the hop answered this message; the reply decides
  auth (relay only)                    our login at the smarthost failed: with a reply code, the
                                       relay's temporary trouble; without one, a configuration
                                       problem here (password, user, no AUTH), always retried

``RelayTransport`` carries mail to one ``[[relay]]`` smarthost: verified TLS, then the login,
with the password file read for every new connection (fix it, flush, and the queue drains).

``SmtpTransport`` honours a hop's MTA-STS policy (``Hop.tls_policy``, RFC 8461 §4.2, §5): in
enforce mode the MX must offer STARTTLS and a certificate valid for its name, else the attempt
is a temporary failure (phase ``starttls``/``tls``, 4.7.5) that says so and nothing is sent; in
testing mode the same check runs, its failure is logged, and the mail goes as usual.

A hop marked for DANE (``TlsPolicy`` mode ``dane``, RFC 7672, ``queue.dane``) needs STARTTLS and
certificates that match its TLSA records, judged by ``dane.peer_check`` right after the
handshake; otherwise the attempt is a temporary failure (4.7.5) that names the records, and
nothing is sent (RFC 7672 §2.2: no fallback to clear text). A hop whose TLSA lookup failed is
not dialled at all.

A message whose sender asked for REQUIRETLS (RFC 8689, ``OutboundMessage.requiretls``) goes
only over a session with verified TLS (§4.2.1): a relay's, an MTA-STS hop's, a DANE hop's, or,
on any other hop, a second connection made for it with STARTTLS and a certificate verified for
the MX host name (a DANE hop's: matching its TLSA records). The hop must also advertise
REQUIRETLS in its EHLO reply after STARTTLS, and then MAIL carries it on. When the hop cannot
give both, the other MX hosts of the route that come after it are tried the same way, in order
(at most ``MAX_REQUIRETLS_HOPS``); the first that can takes the message. When none can and every
one answered, the message bounces at once, with 5.7.30 ("REQUIRETLS support required", §5) if
some host had verified TLS but no REQUIRETLS, else 5.7.10 ("REQUIRETLS needed"): the
destination, not time, decides it. When a host could not be reached at all, the attempt is
temporary instead (it may be the one that can). Nothing is ever sent to a host that fails.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from todoku.config.relay import PasswordError, RelayConfig, read_password
from todoku.net.smtp_client import (
    AUTH,
    Envelope,
    Login,
    SmtpSession,
    Timeouts,
    open_relay_session,
    opportunistic_tls_context,
    verified_tls_context,
)
from todoku.net.smtp_client import open_session as smtp_open_session
from todoku.outcome import PHASE_DNS, Outcome, Verdict
from todoku.outcome import TLS as PHASE_TLS
from todoku.queue import dane, tlsrpt
from todoku.queue.model import Hop, TlsPolicy

log = logging.getLogger("todoku.delivery")

# The bounce analyzer's word for "the login failed" (Sisimai's SecurityError); set here so that
# the runner never reads the relay's refusal of our login as a refusal of the recipient.
RELAY_LOGIN_REASON = "securityerror"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    queue_id: str
    sender: str
    recipients: tuple[tuple[str, tuple[str, ...], str | None], ...]  # (address, notify, orcpt)
    size: int
    open_content: Callable[[], Iterable[bytes]]
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    requiretls: bool = False  # RFC 8689 §4.1: MAIL ... REQUIRETLS on submission


class Channel(Protocol):
    @property
    def remote_mta(self) -> str: ...

    @property
    def usable(self) -> bool:
        """False once the connection cannot carry another message (closed, 421, error)."""
        ...

    async def send(self, message: OutboundMessage) -> list[Outcome]: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def connect(self, hop: Hop, others: tuple[Hop, ...] = ()) -> Channel | Outcome:
        """An open channel, or an Outcome (recipient "") saying why the hop takes no mail.
        ``others``: the route's hops after ``hop``, for a message ``hop`` cannot take
        (REQUIRETLS)."""
        ...


# Dials a hop with verified TLS (for a REQUIRETLS message).
Redial = Callable[[Hop], Awaitable[SmtpSession | Outcome]]
MAX_REQUIRETLS_HOPS = 10  # hosts tried for one REQUIRETLS message, the channel's own included


def requiretls_refused(result: Outcome, recipient: str) -> Outcome:
    """RFC 8689 §5: the hop cannot give the verified TLS the sender asked for. Permanent: no
    retry makes the destination verify, and the sender must know that it did not go."""
    text = (
        "REQUIRETLS needed: the sender asked that this message travel only over TLS with a "
        f"verified certificate (RFC 8689), and {result.text}"
    )
    if "nothing was sent" not in text:
        text += "; nothing was sent"
    return Outcome(
        recipient,
        Verdict.PERMANENT,
        result.phase,
        None,
        "",
        text,
        result.remote_mta,
        "failedstarttls",
        "5.7.10",
    )


def requiretls_unsupported(hosts: list[str]) -> Outcome:
    """RFC 8689 §4.2.1, §5: verified TLS, but no REQUIRETLS in the EHLO reply (5.7.30)."""
    verb = "does" if len(hosts) == 1 else "do"
    text = (
        "REQUIRETLS support required: the sender asked that this message travel only to "
        "servers that promise to keep it on verified TLS (RFC 8689), and "
        f"{', '.join(hosts)} {verb} not offer REQUIRETLS; nothing was sent"
    )
    return Outcome.reply("", "mail", 550, "5.7.30", text, hosts[0])


def requiretls_ready(session: SmtpSession) -> bool:
    """Verified TLS, and REQUIRETLS advertised after STARTTLS (RFC 8689 §4.2.1)."""
    conn = session.conn
    return session.verified and conn.tls_active and conn.supports("REQUIRETLS")


class _SmtpChannel:
    def __init__(
        self,
        session: SmtpSession,
        hop: Hop | None = None,
        redial: Redial | None = None,
        others: tuple[Hop, ...] = (),
    ) -> None:
        self.session = session
        self.remote_mta = session.remote_mta
        self.hop = hop
        self.redial = redial
        self.others = others

    @property
    def usable(self) -> bool:
        return self.session.usable and not self.session.conn.closed

    async def send(self, message: OutboundMessage) -> list[Outcome]:
        if (
            message.requiretls
            and self.redial is not None
            and self.hop is not None
            and not requiretls_ready(self.session)
        ):
            return await self._send_requiretls(message, self.hop, self.redial)
        return await self._send_on(self.session, message)

    async def _send_on(self, session: SmtpSession, message: OutboundMessage) -> list[Outcome]:
        envelope = Envelope(
            sender=message.sender,
            recipients=message.recipients,
            size=message.size,
            open_content=message.open_content,
            smtputf8=message.smtputf8,
            ret=message.ret,
            envid=message.envid,
            requiretls=message.requiretls,
        )
        outcomes = await session.send(envelope)
        dsn = session.conn.supports("DSN")
        return [replace(o, dsn_handed_over=dsn) for o in outcomes]

    async def _send_requiretls(
        self, message: OutboundMessage, hop: Hop, redial: Redial
    ) -> list[Outcome]:
        """A REQUIRETLS message that this session cannot carry: a verified connection of its
        own to this hop (unless this session is verified already, without REQUIRETLS), then to
        the route's next hops, until one has verified TLS and REQUIRETLS (RFC 8689 §4.2.1)."""
        unsupported: list[str] = []  # verified, no REQUIRETLS
        refused: list[Outcome] = []  # no verified TLS
        unreachable: list[Outcome] = []  # no answer about TLS at all
        candidates = [hop, *self.others]
        if self.session.verified:
            unsupported.append(self.session.remote_mta)
            candidates = candidates[1:]
        for candidate in candidates[: MAX_REQUIRETLS_HOPS - len(unsupported)]:
            result = await redial(candidate)
            if isinstance(result, Outcome):
                tls_problem = result.phase in (PHASE_TLS, "starttls")
                (refused if tls_problem else unreachable).append(result)
                continue
            if not requiretls_ready(result):
                unsupported.append(result.remote_mta)
                await result.close()
                continue
            if candidate is not hop:
                log.info(
                    "%s: REQUIRETLS: %s cannot take it; sending through %s",
                    message.queue_id,
                    self.remote_mta,
                    result.remote_mta,
                )
            try:
                return await self._send_on(result, message)
            finally:
                await result.close()
        recipients = [address for address, _, _ in message.recipients]
        if unreachable:
            # A host that did not answer may be the one that can: try again later.
            problems = [f.text for f in (*unreachable, *refused)]
            if unsupported:
                problems.append(f"{', '.join(unsupported)}: no REQUIRETLS")
            text = (
                "REQUIRETLS (RFC 8689): no MX host could take this message over verified TLS "
                f"with REQUIRETLS now ({'; '.join(problems)}); nothing was sent"
            )
            failure = replace(unreachable[0], text=text)
            return [replace(failure, recipient=r) for r in recipients]
        if unsupported:
            return [replace(requiretls_unsupported(unsupported), recipient=r) for r in recipients]
        return [requiretls_refused(refused[0], r) for r in recipients]

    async def close(self) -> None:
        await self.session.close()


def _policy_failure(policy: TlsPolicy, hop: Hop, result: Outcome) -> Outcome:
    """An MX that failed what an enforced MTA-STS policy asks: said in words, temporary."""
    if result.phase == PHASE_TLS:
        problem = (
            f"its server {result.remote_mta} did not present a valid certificate for {hop.host}"
        )
    else:
        problem = f"its server {result.remote_mta} did not accept STARTTLS"
    text = (
        f"the destination publishes an MTA-STS policy (RFC 8461) in enforce mode ({policy.summary}) "
        f"and {problem}: {result.text}"
    )
    return _tls_refused(result, text)


def _tls_refused(result: Outcome, text: str) -> Outcome:
    """A hop whose TLS policy (MTA-STS or DANE) was not met: temporary (4.7.5), with ``text``
    saying that nothing went out in clear."""
    if "nothing was sent" not in text:
        text += "; nothing was sent without TLS"
    return Outcome(
        "",
        Verdict.TEMPORARY,
        result.phase,
        None,
        "",
        text,
        result.remote_mta,
        "failedstarttls",
        "4.7.5",
    )


# TLS reporting's hook (RFC 8460, ``queue.tlsrpt_send.TlsReporter.observe_hop``): a session
# with the hop came to a result type ("" = a successful TLS session) and a failure-reason-code.
TlsObserver = Callable[[Hop, str, str], None]


@dataclass
class SmtpTransport:
    """Direct delivery to MX hosts: opportunistic STARTTLS, or what the hop's MTA-STS policy
    asks. ``verified_context`` checks MX certificates for MTA-STS (default: the system's CAs;
    tests pass one that trusts their test CA). ``tls_observer`` hears each session's TLS
    outcome (TLS-RPT)."""

    helo_name: str
    port: int = 25
    tls_context: ssl.SSLContext | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    verified_context: ssl.SSLContext | None = None
    tls_observer: TlsObserver | None = None

    def _observe_tls(self, hop: Hop, result: SmtpSession | Outcome) -> None:
        """Tell TLS reporting how the session with ``hop`` went, when it was a TLS session."""
        if self.tls_observer is None:
            return
        if isinstance(result, Outcome):
            found = tlsrpt.failure_result(hop.tls_policy, result.phase, result.verify_code)
            if found is not None:
                self.tls_observer(hop, *found)
        elif result.tls:
            self.tls_observer(hop, "", "")
        else:
            # RFC 8460 §4.3.1: the MX did not offer STARTTLS (or refused it): mail went in clear.
            self.tls_observer(hop, tlsrpt.STARTTLS_NOT_SUPPORTED, "")

    def _verified(self) -> ssl.SSLContext:
        if self.verified_context is None:
            self.verified_context = verified_tls_context()
        return self.verified_context

    async def _dial_verified(self, hop: Hop) -> SmtpSession | Outcome:
        """STARTTLS and a certificate valid for the MX host name (RFC 8689 §4.2.1), or, on a
        DANE hop, one that matches its TLSA records."""
        why = "the sender asked for REQUIRETLS (RFC 8689)"
        policy = hop.tls_policy
        if policy is not None and policy.mode == dane.DANE:
            if policy.dane_error:
                return Outcome.reply("", PHASE_DNS, None, "", policy.dane_error, hop.host)
            return await smtp_open_session(
                hop.host,
                hop.ip,
                self.port,
                helo_name=self.helo_name,
                tls_context=self.tls_context or opportunistic_tls_context(),
                timeouts=self.timeouts,
                require_tls=why,
                peer_check=dane.peer_check(policy, hop.host),
            )
        if not hop.host:
            text = f"[{hop.ip}] is an address literal: no name to verify a certificate against"
            return Outcome.reply("", PHASE_TLS, None, "", text, f"[{hop.ip}]")
        return await smtp_open_session(
            hop.host,
            hop.ip,
            self.port,
            helo_name=self.helo_name,
            tls_context=self._verified(),
            timeouts=self.timeouts,
            require_tls=why,
        )

    async def connect(self, hop: Hop, others: tuple[Hop, ...] = ()) -> Channel | Outcome:
        channel = await self._connect(hop)
        if isinstance(channel, _SmtpChannel):
            channel.hop, channel.redial, channel.others = hop, self._dial_verified, others
        return channel

    async def _connect(self, hop: Hop) -> Channel | Outcome:
        policy = hop.tls_policy
        if policy is not None and policy.mode == dane.DANE:
            return await self._connect_dane(hop, policy)
        if policy is not None and (policy.mode == "enforce" or policy.listed):
            why = f"the {policy.summary} requires TLS with a valid certificate"
            secured = await smtp_open_session(
                hop.host,
                hop.ip,
                self.port,
                helo_name=self.helo_name,
                tls_context=self._verified(),
                timeouts=self.timeouts,
                require_tls=why,
            )
            self._observe_tls(hop, secured)
            if not isinstance(secured, Outcome):
                return _SmtpChannel(secured)
            if policy.mode == "enforce":
                if secured.phase not in (PHASE_TLS, "starttls"):
                    return secured  # not about TLS: unreachable, 4xx greeting
                return _policy_failure(policy, hop, secured)
            log.warning(
                "%s: MTA-STS testing: enforce mode would defer this: %s (%s); delivering anyway",
                policy.domain,
                secured.text,
                policy.summary,
            )
            return await self._connect_opportunistic(hop, observe=False)  # counted above
        elif policy is not None:
            log.warning(
                "MTA-STS testing: %s is not an MX host the %s allows; enforce mode would not "
                "use it; delivering anyway",
                hop.host,
                policy.summary,
            )
            if self.tls_observer is not None:
                self.tls_observer(hop, tlsrpt.VALIDATION_FAILURE, "MX host not in the policy")
            return await self._connect_opportunistic(hop, observe=False)
        return await self._connect_opportunistic(hop)

    async def _connect_dane(self, hop: Hop, policy: TlsPolicy) -> Channel | Outcome:
        if policy.dane_error:
            if self.tls_observer is not None:
                # RFC 8460 §4.3.2.1: no valid records came back from the resolver.
                self.tls_observer(hop, tlsrpt.DNSSEC_INVALID, "TLSA lookup failed")
            text = f"{policy.dane_error}; nothing was sent"
            return Outcome(
                "", Verdict.TEMPORARY, PHASE_DNS, None, "", text, "", "networkerror", "4.4.3"
            )
        # DANE-EE checks no name and no dates (RFC 7672 §3.1.1), so the handshake must not
        # either: the context only encrypts, and dane.peer_check decides.
        context = self.tls_context or opportunistic_tls_context()
        result = await smtp_open_session(
            hop.host,
            hop.ip,
            self.port,
            helo_name=self.helo_name,
            tls_context=context,
            timeouts=self.timeouts,
            require_tls="its DNSSEC-signed TLSA records require TLS (RFC 7672 §2.2)",
            peer_check=dane.peer_check(policy, hop.host),
        )
        self._observe_tls(hop, result)
        if not isinstance(result, Outcome):
            return _SmtpChannel(result)
        if result.phase not in (PHASE_TLS, "starttls"):
            return result  # not about TLS: unreachable, 4xx greeting
        text = (
            f"DANE (RFC 7672): the {policy.summary} require TLS with a matching certificate, "
            f"and {result.text}"
        )
        return _tls_refused(result, text)

    async def _connect_opportunistic(self, hop: Hop, *, observe: bool = True) -> Channel | Outcome:
        result = await smtp_open_session(
            hop.host,
            hop.ip,
            self.port,
            helo_name=self.helo_name,
            tls_context=self.tls_context,
            timeouts=self.timeouts,
        )
        if observe and self.tls_context is not None:
            self._observe_tls(hop, result)
        if isinstance(result, Outcome):
            return result
        return _SmtpChannel(result)


def relay_login_failure(relay: RelayConfig, detail: str, remote_mta: str = "") -> Outcome:
    """A login problem at the smarthost: ours to fix, so temporary whatever the relay said
    (never a bounce before the message's lifetime ends), and worded to say so."""
    text = (
        f"login to the relay {relay.label} failed: {detail}. This is a configuration problem "
        f"on this server, not a problem with the recipient: check {relay.key}.user and "
        f"{relay.key}.password_file, then run `todoku queue flush`"
    )
    return Outcome(
        "", Verdict.TEMPORARY, AUTH, None, "", text, remote_mta, RELAY_LOGIN_REASON, "4.7.8"
    )


@dataclass
class RelayTransport:
    """Connections to one smarthost (``[[relay]]``); ``hop`` is one address of its host."""

    relay: RelayConfig
    helo_name: str
    timeouts: Timeouts = field(default_factory=Timeouts)
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)

    def tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            ca_file = str(self.relay.ca_file) if self.relay.ca_file else None
            self._context = verified_tls_context(ca_file)
        return self._context

    async def connect(self, hop: Hop, others: tuple[Hop, ...] = ()) -> Channel | Outcome:
        relay = self.relay
        login = None
        if relay.user is not None:
            try:
                login = Login(relay.user, read_password(relay))  # read anew for each connection
            except PasswordError as exc:
                return relay_login_failure(relay, f"no password to send: {exc}")
        try:
            context = self.tls_context()
        except (OSError, ssl.SSLError) as exc:
            text = f"{relay.key}.ca_file: cannot load {relay.ca_file}: {exc}"
            return Outcome(
                "", Verdict.TEMPORARY, "tls", None, "", text, "", "failedstarttls", "4.7.5"
            )
        result = await open_relay_session(
            relay.host,
            hop.ip,
            relay.port,
            helo_name=self.helo_name,
            tls_context=context,
            implicit_tls=relay.tls == "implicit",
            login=login,
            timeouts=self.timeouts,
        )
        if isinstance(result, Outcome):
            if result.phase == AUTH and result.code is None:
                return relay_login_failure(relay, result.text, result.remote_mta)
            if result.phase in ("tls", "starttls"):
                return replace(result, reason="failedstarttls", status="4.7.5")
            return result
        return _SmtpChannel(result)


Handler = Callable[[Hop, OutboundMessage | None], list[Outcome] | Outcome | None]


@dataclass
class MockTransport:
    """``handler(hop, None)`` at connect (None = accept, Outcome = refuse); then
    ``handler(hop, message)`` per message → one Outcome per recipient."""

    handler: Handler

    async def connect(self, hop: Hop, others: tuple[Hop, ...] = ()) -> Channel | Outcome:
        refused = self.handler(hop, None)
        if isinstance(refused, Outcome):
            return refused
        return _MockChannel(self.handler, hop)


class _MockChannel:
    def __init__(self, handler: Handler, hop: Hop) -> None:
        self.handler = handler
        self.hop = hop
        self.remote_mta = f"{hop.host} [{hop.ip}]"
        self.usable = True

    async def send(self, message: OutboundMessage) -> list[Outcome]:
        result = self.handler(self.hop, message)
        assert isinstance(result, list)
        return result

    async def close(self) -> None:
        self.usable = False
