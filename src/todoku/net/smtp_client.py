"""The SMTP client adapter: dials a remote MX and drives ``proto.smtp.client`` over the socket.

It never raises because of what the remote said or did: every reply, refusal, timeout, reset or
TLS failure becomes a ``todoku.outcome.Outcome`` per recipient (phase, code, enhanced code, text, remote
MTA), the same facts the queue records, the DSN cites and the bounce analyzer reads.

STARTTLS is opportunistic, as for MX delivery in the major MTAs: used whenever the server offers
it, certificates not verified (RFC 7435 §1.3: unauthenticated encryption beats none). When the
TLS handshake fails, ``open_session`` dials again once without TLS and logs that it did.

A smarthost (``open_relay_session``) is different: mail to it always goes encrypted, with its
certificate and name verified (RFC 8314 §3.3 for implicit TLS on 465, RFC 3207 for STARTTLS on
587); a missing STARTTLS or a failed handshake ends the attempt (phase ``starttls``/``tls``,
temporary), never a plain-text retry. The login (RFC 4954) follows TLS: PLAIN, or LOGIN when the
relay offers no PLAIN. A login the relay refuses (535 and other 5xx), or a relay that offers no
AUTH, is reported as phase ``auth`` without a reply code: that reply is about our credentials,
not about the message, so it is quoted in the text rather than becoming a DSN's Diagnostic-Code.

An MX whose domain publishes an MTA-STS policy in enforce mode (RFC 8461) is dialled like the
relay: ``open_session(..., require_tls=WHY)`` needs STARTTLS and a certificate verified for the
MX host name, and ends the attempt (phase ``starttls``/``tls``) instead of retrying in clear.
An MX with DANE TLSA records (RFC 7672) is dialled the same way with ``peer_check``: the context
need not verify (DANE-EE ignores names and dates), and ``peer_check(ssl_object)`` decides right
after the handshake, before EHLO; a refusal ends the attempt (phase ``tls``).

A session opened either of these ways is ``verified``. A message whose sender asked for
REQUIRETLS (RFC 8689 §4.2.1) goes only over such a session, and only to a server that advertises
REQUIRETLS in its EHLO reply after STARTTLS; MAIL then carries REQUIRETLS. ``send`` refuses it,
nothing sent, on an unverified session (5.7.10) and to a server without REQUIRETLS (5.7.30).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from todoku.outcome import CONNECT, TLS, Outcome
from todoku.proto.errors import ProtocolError
from todoku.proto.smtp import client as proto
from todoku.proto.smtp.client import ClientConnection, ReplyEvent
from todoku.proto.smtp.events import NEED_DATA, PAUSED

log = logging.getLogger("todoku.delivery")

READ_SIZE = 64 * 1024
CONTENT_PIECE = 256 * 1024

# Phases before any command: these and the command names of proto.smtp.client name the step
# an outcome comes from.
AUTH = proto.AUTH

RELAY_NEEDS_TLS = "mail to the relay is never sent without TLS"

# Called once TLS is up: None to go on, else why the server's certificates are not acceptable.
PeerCheck = Callable[[ssl.SSLObject], str | None]

# ``Outcome.verify_code`` when the ``peer_check`` (DANE) refused the certificates; other
# values are OpenSSL's X509_V_ERR_* codes from a verifying context (TLS-RPT reads them).
PEER_CHECK_REFUSED = -1


@dataclass(frozen=True, slots=True)
class Timeouts:
    """RFC 5321 §4.5.3.2 minimums by default; tests pass seconds."""

    connect: float = 30.0
    greeting: float = 300.0
    command: float = 300.0
    data_block: float = 180.0
    end_of_data: float = 600.0


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str
    recipients: tuple[tuple[str, tuple[str, ...], str | None], ...]  # (address, notify, orcpt)
    size: int
    open_content: Callable[[], Iterable[bytes]]  # yields the message in pieces, CRLF line ends
    smtputf8: bool = False
    eight_bit: bool = True
    ret: str | None = None
    envid: str | None = None
    requiretls: bool = False  # RFC 8689: only over a verified TLS session


class Stopped(Exception):
    """The session cannot go on: ``outcome`` (recipient "") says at which step and why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.text)
        self.outcome = outcome


class _TlsHandshakeFailed(Exception):
    pass


def remote_mta_name(host: str, ip: str) -> str:
    return f"{host} [{ip}]" if host and host != ip else f"[{ip}]"


def opportunistic_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # opportunistic: RFC 7435
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def verified_tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The system's trusted CAs (plus ``ca_file``), certificate and host name checked."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    password: str = field(repr=False)


@dataclass
class SmtpSession:
    """One open connection to one MX, able to carry several messages in turn."""

    host: str
    ip: str
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeouts: Timeouts
    conn: ClientConnection = field(default_factory=ClientConnection)
    tls: str = ""  # "TLSv1.3 TLS_AES_256_GCM_SHA384" once encrypted
    usable: bool = True
    # TLS whose certificates were checked (by name and CA, or by DANE): what RFC 8689 asks.
    verified: bool = False

    @property
    def remote_mta(self) -> str:
        return remote_mta_name(self.host, self.ip)

    def _stopped(
        self, phase: str, code: int | None, enhanced: str, text: str, verify_code: int | None = None
    ) -> Stopped:
        outcome = Outcome.reply("", phase, code, enhanced, text, self.remote_mta)
        return Stopped(
            replace(outcome, verify_code=verify_code) if verify_code is not None else outcome
        )

    # ------------------------------------------------------------------ plumbing

    async def _flush(self, data: bytes, timeout: float) -> None:
        self.writer.write(data)
        transport = self.writer.transport
        if transport.get_write_buffer_size() == 0 and not transport.is_closing():
            return  # all in the kernel already: no timer to arm, nothing to wait for
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    async def _read_reply(self, phase: str, timeout: float) -> ReplyEvent:
        try:
            event = self.conn.next_event()
            if isinstance(event, ReplyEvent):
                return event  # already here (pipelined replies arrive together): no timer
            async with asyncio.timeout(timeout):
                while True:
                    if isinstance(event, ReplyEvent):
                        return event
                    if event is PAUSED:
                        raise self._stopped(phase, None, "", "paused for TLS")
                    assert event is NEED_DATA
                    data = await self.reader.read(READ_SIZE)
                    if not data:
                        raise self._stopped(
                            phase,
                            None,
                            "",
                            f"connection closed by {self.remote_mta} during {phase}",
                        )
                    self.conn.receive_data(data)
                    event = self.conn.next_event()
        except TimeoutError:
            raise self._stopped(
                phase, None, "", f"timed out waiting for the reply to {phase}"
            ) from None
        except ProtocolError as exc:
            raise self._stopped(phase, None, "", f"protocol error: {exc}") from None
        except (ConnectionError, OSError) as exc:
            raise self._stopped(phase, None, "", f"lost connection during {phase}: {exc}") from None

    async def _command(self, data: bytes, phase: str, timeout: float) -> ReplyEvent:
        try:
            await self._flush(data, timeout)
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise self._stopped(
                phase, None, "", f"lost connection sending {phase}: {exc}"
            ) from None
        return await self._read_reply(phase, timeout)

    # ------------------------------------------------------------------ opening

    async def _hello(self, helo_name: str) -> None:
        event = await self._command(self.conn.ehlo(helo_name), proto.EHLO, self.timeouts.command)
        reply = event.reply
        if reply.code == 250:
            return
        if reply.code == 421 or self.conn.closed:
            raise self._stopped(proto.EHLO, reply.code, reply.enhanced, reply.text)
        # RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        event = await self._command(self.conn.helo(helo_name), proto.HELO, self.timeouts.command)
        if event.reply.code != 250:
            raise self._stopped(
                proto.HELO, event.reply.code, event.reply.enhanced, event.reply.text
            )

    async def greet(self, helo_name: str, tls_context: ssl.SSLContext | None) -> None:
        event = await self._read_reply(proto.GREETING, self.timeouts.greeting)
        if event.reply.code != 220:  # RFC 5321 §3.1: 554 (or 421) means "no service here"
            raise self._stopped(
                proto.GREETING, event.reply.code, event.reply.enhanced, event.reply.text
            )
        await self._hello(helo_name)
        if tls_context is None or not self.conn.supports("STARTTLS"):
            return
        event = await self._command(self.conn.starttls(), proto.STARTTLS, self.timeouts.command)
        if event.reply.code != 220:
            log.info(
                "%s: STARTTLS refused (%s); continuing without TLS", self.remote_mta, event.reply
            )
            return
        try:
            async with asyncio.timeout(self.timeouts.command):
                await self.writer.start_tls(tls_context, server_hostname=self.host or None)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError) as exc:
            raise _TlsHandshakeFailed(str(exc) or type(exc).__name__) from None
        self.conn.tls_started()
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()
        await self._hello(helo_name)  # RFC 3207 §4.2: EHLO again after the handshake

    async def greet_relay(
        self,
        helo_name: str,
        tls_context: ssl.SSLContext,
        login: Login | None,
        why: str = RELAY_NEEDS_TLS,
        peer_check: PeerCheck | None = None,
    ) -> None:
        """Greeting, EHLO, STARTTLS (unless already encrypted), EHLO, AUTH: never in clear.
        ``why`` ends the sentence that explains a missing or refused STARTTLS; ``peer_check``
        judges the server's certificates after the handshake."""
        event = await self._read_reply(proto.GREETING, self.timeouts.greeting)
        if event.reply.code != 220:
            raise self._stopped(
                proto.GREETING, event.reply.code, event.reply.enhanced, event.reply.text
            )
        await self._hello(helo_name)
        if not self.conn.tls_active:
            if not self.conn.supports("STARTTLS"):
                hint = ' (use tls = "implicit" for port 465)' if why == RELAY_NEEDS_TLS else ""
                raise self._stopped(
                    proto.STARTTLS,
                    None,
                    "",
                    f"{self.remote_mta} does not offer STARTTLS; {why}{hint}",
                )
            event = await self._command(self.conn.starttls(), proto.STARTTLS, self.timeouts.command)
            if event.reply.code != 220:
                raise self._stopped(
                    proto.STARTTLS,
                    None,
                    "",
                    f"{self.remote_mta} refused STARTTLS ({event.reply}); {why}",
                )
            try:
                async with asyncio.timeout(self.timeouts.command):
                    await self.writer.start_tls(tls_context, server_hostname=self.host)
            except (ssl.SSLError, TimeoutError, ConnectionError, OSError) as exc:
                text = _tls_failure(self.remote_mta, exc)
                raise self._stopped(TLS, None, "", text, _verify_code(exc)) from None
            if peer_check is not None:
                ssl_object = self.writer.get_extra_info("ssl_object")
                problem = peer_check(ssl_object) if ssl_object is not None else "no TLS session"
                if problem is not None:
                    text = f"{self.remote_mta}: {problem}; nothing was sent"
                    raise self._stopped(TLS, None, "", text, PEER_CHECK_REFUSED)
            self.conn.tls_started()
            await self._hello(helo_name)  # RFC 3207 §4.2: EHLO again after the handshake
        self._note_tls()
        # Only ever called with a verifying context or a peer_check (open_session checks).
        self.verified = True
        if login is not None:
            await self._authenticate(login)

    def _note_tls(self) -> None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

    async def _authenticate(self, login: Login) -> None:
        """RFC 4954 §4: PLAIN with an initial response, else LOGIN; 235 means logged in."""
        conn = self.conn
        timeout = self.timeouts.command
        if not conn.supports("AUTH"):
            raise self._stopped(AUTH, None, "", f"{self.remote_mta} does not offer AUTH (login)")
        mechanisms = conn.auth_mechanisms
        if "PLAIN" in mechanisms:
            secret = proto.plain_response(login.user, login.password)
            event = await self._command(conn.auth("PLAIN", secret), AUTH, timeout)
            if event.reply.code == 334:  # a server that wants the response after a challenge
                event = await self._command(conn.auth_response(secret), AUTH, timeout)
        elif "LOGIN" in mechanisms:
            event = await self._command(conn.auth("LOGIN"), AUTH, timeout)
            for answer in (login.user, login.password):
                if event.reply.code != 334:
                    break
                event = await self._command(
                    conn.auth_response(answer.encode("utf-8")), AUTH, timeout
                )
        else:
            offered = " ".join(mechanisms) or "none"
            raise self._stopped(
                AUTH,
                None,
                "",
                f"{self.remote_mta} offers no login method todoku "
                f"speaks (AUTH {offered}; PLAIN or LOGIN needed)",
            )
        reply = event.reply
        if reply.code == 235:
            return
        if reply.code == 334:
            await self._command(conn.auth_cancel(), AUTH, timeout)
            raise self._stopped(
                AUTH,
                None,
                "",
                f"{self.remote_mta} asked more than a login method allows; exchange cancelled",
            )
        if 400 <= reply.code < 500:
            raise self._stopped(AUTH, reply.code, reply.enhanced, reply.text)  # try again later
        raise self._stopped(
            AUTH, None, "", f"{self.remote_mta} refused the login as {login.user}: {reply}"
        )

    # ------------------------------------------------------------------ one message

    async def send(
        self,
        envelope: Envelope,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """One transaction. ``on_outcome`` hears each recipient's final result as soon as it is known."""
        outcomes: dict[str, Outcome] = {}

        def settle(outcome: Outcome) -> None:
            if outcome.recipient not in outcomes:
                outcomes[outcome.recipient] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)

        def fail_all(phase: str, code: int | None, enhanced: str, text: str) -> list[Outcome]:
            for address, _, _ in envelope.recipients:
                settle(Outcome.reply(address, phase, code, enhanced, text, self.remote_mta))
            return [outcomes[a] for a, _, _ in envelope.recipients]

        try:
            return await self._send(envelope, settle, fail_all)
        except Stopped as stop:
            self.usable = False
            failure = stop.outcome
            return fail_all(failure.phase, failure.code, failure.enhanced, failure.text)

    async def _send(
        self,
        envelope: Envelope,
        settle: Callable[[Outcome], None],
        fail_all: Callable[[str, int | None, str, str], list[Outcome]],
    ) -> list[Outcome]:
        conn = self.conn
        max_size = conn.max_size
        if max_size is not None and envelope.size > max_size:
            # RFC 1870 §6: do not send what the server already said it will not take.
            text = f"message size {envelope.size} exceeds the limit of {max_size} announced by {self.remote_mta}"
            return fail_all(proto.MAIL, 552, "5.3.4", text)
        if envelope.smtputf8 and not conn.supports("SMTPUTF8"):
            # RFC 6531 §3.2: a message that needs SMTPUTF8 must not go to a server without it.
            return fail_all(
                proto.MAIL, 553, "5.6.7", f"{self.remote_mta} does not support SMTPUTF8"
            )
        if envelope.requiretls and not self.verified:
            # RFC 8689 §4.2.1: never hand a REQUIRETLS message to a server not verified over TLS.
            text = (
                f"REQUIRETLS needed: the sender asked for TLS with a verified certificate "
                f"(RFC 8689) and the session with {self.remote_mta} has none; nothing was sent"
            )
            return fail_all(proto.MAIL, 550, "5.7.10", text)
        if envelope.requiretls and not (conn.tls_active and conn.supports("REQUIRETLS")):
            # RFC 8689 §4.2.1: the EHLO reply after STARTTLS must advertise REQUIRETLS; §5: 5.7.30.
            text = (
                f"REQUIRETLS support required: the sender asked that this message travel only to "
                f"servers that promise to keep it on verified TLS (RFC 8689), and {self.remote_mta} "
                f"does not offer REQUIRETLS; nothing was sent"
            )
            return fail_all(proto.MAIL, 550, "5.7.30", text)
        mail = conn.mail(
            envelope.sender,
            size=envelope.size,
            eight_bit=envelope.eight_bit,
            smtputf8=envelope.smtputf8,
            ret=envelope.ret,
            envid=envelope.envid,
            requiretls=envelope.requiretls,
        )
        rcpts = [conn.rcpt(a, notify=n, orcpt=o) for a, n, o in envelope.recipients]
        timeout = self.timeouts.command
        if conn.supports("PIPELINING"):
            # RFC 2920 §3.1: MAIL, RCPT... and DATA may go in one write; DATA is last in the group.
            await self._flush_or_fail(mail + b"".join(rcpts) + conn.data(), proto.MAIL, timeout)
            replies = [await self._read_reply(proto.MAIL, timeout)]
            for _ in rcpts:
                if conn.closed:
                    break
                replies.append(await self._read_reply(proto.RCPT, timeout))
            data_event: ReplyEvent | None = (
                None if conn.closed else await self._read_reply(proto.DATA, timeout)
            )
        else:
            replies = [await self._command(mail, proto.MAIL, timeout)]
            data_event = None
            if replies[0].reply.code == 250:
                for rcpt in rcpts:
                    if conn.closed:
                        break
                    replies.append(await self._command(rcpt, proto.RCPT, timeout))
        if conn.closed:
            # A 421 (RFC 5321 §3.8): the server is going away; what was not refused is deferred.
            self.usable = False
            last = replies[-1]
            for event in replies[1:-1]:
                if event.reply.code not in (250, 251):
                    settle(self._refused(event))
            return fail_all(last.command, last.reply.code, last.reply.enhanced, last.reply.text)
        mail_reply = replies[0].reply
        if mail_reply.code != 250:
            if mail_reply.code == 421:
                self.usable = False
            await self._reset_after_failure(data_event)
            return fail_all(proto.MAIL, mail_reply.code, mail_reply.enhanced, mail_reply.text)
        accepted = []
        for event in replies[1:]:
            if event.reply.code in (250, 251):
                accepted.append(event.argument)
            else:
                settle(self._refused(event))
                if event.reply.code == 421:
                    self.usable = False
        if not accepted:
            await self._reset_after_failure(data_event)
            return fail_all(proto.RCPT, None, "", "no recipient accepted")
        if data_event is None:
            data_event = await self._command(conn.data(), proto.DATA, timeout)
        if data_event.reply.code != 354:
            reply = data_event.reply
            if reply.code == 421:
                self.usable = False
            else:
                await self._reset_after_failure(None)
            return fail_all(proto.DATA, reply.code, reply.enhanced, reply.text)
        try:
            # Pieces are gathered up to CONTENT_PIECE before a write: a small message and its
            # final dot leave in one write (one system call), a large one in 256 KiB writes.
            pending: list[bytes] = []
            gathered = 0
            for piece in envelope.open_content():
                stuffed = conn.content(piece)
                if stuffed:
                    pending.append(stuffed)
                    gathered += len(stuffed)
                    if gathered >= CONTENT_PIECE:
                        await self._flush(b"".join(pending), self.timeouts.data_block)
                        pending, gathered = [], 0
            pending.append(conn.end_of_data())
            await self._flush(b"".join(pending), self.timeouts.data_block)
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise self._stopped(
                proto.END_OF_DATA, None, "", f"lost connection sending the message: {exc}"
            ) from None
        final = await self._read_reply(proto.END_OF_DATA, self.timeouts.end_of_data)
        reply = final.reply
        if reply.code == 421:
            self.usable = False
        # Without LMTP there is one reply for all accepted recipients (RFC 5321 §4.1.1.4).
        return fail_all(proto.END_OF_DATA, reply.code, reply.enhanced, reply.text)

    async def _flush_or_fail(self, data: bytes, phase: str, timeout: float) -> None:
        try:
            await self._flush(data, timeout)
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise self._stopped(
                phase, None, "", f"lost connection sending {phase}: {exc}"
            ) from None

    def _refused(self, rcpt: ReplyEvent) -> Outcome:
        """The final outcome of a recipient the server refused at RCPT TO, in its words."""
        reply = rcpt.reply
        return Outcome.reply(
            rcpt.argument, proto.RCPT, reply.code, reply.enhanced, reply.text, self.remote_mta
        )

    async def _reset_after_failure(self, pipelined_data: ReplyEvent | None) -> None:
        """After a refused transaction: close an accidentally opened DATA, then RSET."""
        if self.conn.closed or not self.usable:
            return
        if pipelined_data is not None and pipelined_data.reply.code == 354:
            # RFC 2920 §3.1: a server that wrongly accepted DATA gets an empty message's dot;
            # its reply is for no recipient.
            await self._flush(self.conn.end_of_data(), self.timeouts.data_block)
            await self._read_reply(proto.END_OF_DATA, self.timeouts.end_of_data)
        event = await self._command(self.conn.rset(), proto.RSET, self.timeouts.command)
        if event.reply.code != 250:
            self.usable = False

    async def close(self) -> None:
        try:
            if self.usable and not self.conn.closed:
                self.writer.write(self.conn.quit())
                async with asyncio.timeout(5):
                    await self.writer.drain()
                    await self._read_reply(proto.QUIT, 5)
        except (Stopped, TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.writer.close()
            try:
                async with asyncio.timeout(5):
                    await self.writer.wait_closed()
            except (TimeoutError, ConnectionError, OSError, ssl.SSLError):
                pass


async def _dial(
    host: str,
    ip: str,
    port: int,
    helo_name: str,
    tls_context: ssl.SSLContext | None,
    timeouts: Timeouts,
    local_address: str | None,
    require_tls: str | None = None,
    peer_check: PeerCheck | None = None,
) -> SmtpSession | Outcome:
    remote = remote_mta_name(host, ip)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        async with asyncio.timeout(timeouts.connect):
            reader, writer = await asyncio.open_connection(
                ip,
                port,
                family=family,
                limit=1024 * 1024,
                local_addr=(local_address, 0) if local_address else None,
            )
    except TimeoutError:
        return _failure(CONNECT, f"connect to {remote}:{port}: timed out", remote)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failure(CONNECT, f"connect to {remote}:{port}: {reason}", remote)
    session = SmtpSession(host, ip, port, reader, writer, timeouts)
    try:
        if require_tls is not None and tls_context is not None:
            await session.greet_relay(helo_name, tls_context, None, require_tls, peer_check)
        else:
            await session.greet(helo_name, tls_context)
    except Stopped as stop:
        failure = stop.outcome
        session.usable = failure.code is not None and failure.code != 421 and failure.phase != TLS
        await session.close()
        return failure
    except _TlsHandshakeFailed:
        session.usable = False
        await session.close()
        raise
    return session


async def open_session(
    host: str,
    ip: str,
    port: int,
    *,
    helo_name: str,
    tls_context: ssl.SSLContext | None,
    timeouts: Timeouts = Timeouts(),
    local_address: str | None = None,
    require_tls: str | None = None,
    peer_check: PeerCheck | None = None,
) -> SmtpSession | Outcome:
    """Dial ``ip`` (IPv4 or IPv6), read the greeting, EHLO, STARTTLS when offered.

    ``require_tls`` (a reason, "the MTA-STS policy of example.com requires TLS") makes STARTTLS
    with ``tls_context`` mandatory, its certificates checked by the context (which must then
    verify them against ``host``) or by ``peer_check`` (DANE): any failure ends the attempt and
    nothing is sent in clear."""
    if require_tls is not None:
        if tls_context is None or (
            peer_check is None and tls_context.verify_mode != ssl.CERT_REQUIRED
        ):
            raise ValueError("require_tls needs a verifying TLS context or a peer_check")
        return await _dial(
            host,
            ip,
            port,
            helo_name,
            tls_context,
            timeouts,
            local_address,
            require_tls,
            peer_check,
        )
    if peer_check is not None:
        raise ValueError("peer_check needs require_tls")
    try:
        return await _dial(host, ip, port, helo_name, tls_context, timeouts, local_address)
    except _TlsHandshakeFailed as exc:
        log.warning(
            "%s: TLS handshake failed (%s); retrying once without TLS",
            remote_mta_name(host, ip),
            exc,
        )
    try:
        return await _dial(host, ip, port, helo_name, None, timeouts, local_address)
    except _TlsHandshakeFailed as exc:  # pragma: no cover - cannot happen without a context
        return _failure(TLS, str(exc), remote_mta_name(host, ip))


def _failure(phase: str, text: str, remote: str, verify_code: int | None = None) -> Outcome:
    """A session that never got going (recipient ""): no reply, so temporary (RFC 5321 §4.5.4.1)."""
    outcome = Outcome.reply("", phase, None, "", text, remote)
    return replace(outcome, verify_code=verify_code) if verify_code is not None else outcome


def _verify_code(exc: BaseException) -> int | None:
    """OpenSSL's X509_V_ERR_* code when the handshake failed on the certificate check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_code
    return None


def _tls_failure(remote: str, exc: BaseException) -> str:
    reason = getattr(exc, "verify_message", None) or str(exc) or type(exc).__name__
    return f"TLS with {remote} failed ({reason}); nothing was sent without TLS"


async def open_relay_session(
    host: str,
    ip: str,
    port: int,
    *,
    helo_name: str,
    tls_context: ssl.SSLContext,
    implicit_tls: bool,
    login: Login | None,
    timeouts: Timeouts = Timeouts(),
) -> SmtpSession | Outcome:
    """Dial a smarthost: implicit TLS (465) or STARTTLS (587), the certificate verified against
    ``host`` (the configured name); then AUTH when ``login`` is given. No plain-text fallback."""
    remote = remote_mta_name(host, ip)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        async with asyncio.timeout(timeouts.connect + (timeouts.command if implicit_tls else 0)):
            reader, writer = await asyncio.open_connection(
                ip,
                port,
                family=family,
                limit=1024 * 1024,
                ssl=tls_context if implicit_tls else None,
                server_hostname=host if implicit_tls else None,
            )
    except TimeoutError:
        return _failure(CONNECT, f"connect to {remote}:{port}: timed out", remote)
    except ssl.SSLError as exc:
        text = _tls_failure(f"{remote}:{port}", exc)
        return _failure(TLS, text, remote, _verify_code(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failure(CONNECT, f"connect to {remote}:{port}: {reason}", remote)
    session = SmtpSession(
        host, ip, port, reader, writer, timeouts, ClientConnection(tls=implicit_tls)
    )
    try:
        await session.greet_relay(helo_name, tls_context, login)
    except Stopped as stop:
        failure = stop.outcome
        session.usable = failure.code is not None and failure.code != 421 and failure.phase != TLS
        await session.close()
        return failure
    return session
