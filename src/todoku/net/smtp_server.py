"""The SMTP adapter: carries bytes between a socket and ``proto.smtp.server``, and makes the decisions.

One ``SmtpSession`` per connection. It never writes to the socket while holding anything shared,
answers every decision event, and sends a reply only after the work behind it is done: the 250
after DATA waits for the group commit. On shutdown a session that is waiting for a command gets
``421 4.3.2``; one in the middle of storing a message finishes that first.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from todoku.config import Config
from todoku.ingest import (
    HEADER_SCAN_LIMIT,
    HeaderFacts,
    HeaderScan,
    protocol_name,
    received_header,
    submission_headers,
)
from todoku.mailauth.inbound import HEADER_TOO_LARGE, InboundPolicy, hold, write_checked
from todoku.net import tls as tls_util
from todoku.net.idle import Idle
from todoku.net.link import ConnectionLimits, Refusal, SendTimeout, SessionLink
from todoku.policy.auth import AuthThrottle, verify_password
from todoku.policy.directory import Directory
from todoku.policy.sender import check_from
from todoku.proto.smtp import codes
from todoku.proto.smtp.address import Address
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import (
    NEED_DATA,
    PAUSED,
    AuthRequest,
    Closed,
    DataChunk,
    DataCommand,
    EndOfData,
    Hello,
    MailFrom,
    MessageTooBig,
    RcptTo,
    Reset,
    StartTLS,
)
from todoku.proto.smtp.server import ServerConnection, SessionSettings
from todoku.store.api import IncomingMessage, RemoteRecipient, SpooledBlob, StorageFull
from todoku.store.content import Blobs, BlobWriter
from todoku.store.intake import Intake

if TYPE_CHECKING:
    from todoku.net.counters import SessionCounters

log = logging.getLogger("todoku.smtp")

# Unread bytes past which the connection stops reading until the session catches up.
BUFFER_LIMIT = 1024 * 1024
COMMAND_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: at least 5 minutes
POLICY_DNS_TIMEOUT = 10.0  # bound on the MX's blocklist and SPF/DKIM/DMARC lookups
HELD_IN_MEMORY = 1024 * 1024


@dataclass
class SmtpContext:
    """What every SMTP session of this server shares."""

    config: Config
    blobs: Blobs  # where DATA is written
    intake: Intake  # where an accepted message is stored (the 250 waits for it)
    directory: Directory  # recipients, senders and logins (store lookups: all awaited)
    throttle: AuthThrottle
    tls_context: ssl.SSLContext | None
    stopping: bool = False
    sessions: set[SmtpSession] = field(default_factory=set)
    next_session: int = 0
    inbound: InboundPolicy | None = None  # [policy] checks for the MX (service "smtp") only
    connections: ConnectionLimits | None = None  # [limits] on connections, shared with POP3
    metrics: SessionCounters | None = None  # counters for /metrics (web.metrics), from app.py

    def session_id(self) -> str:
        self.next_session += 1
        return f"{self.next_session:06X}"


@dataclass
class _Transaction:
    sender: Address | None = None
    mail: MailFrom | None = None
    mailboxes: list[str] = field(default_factory=list)
    remote: list[RemoteRecipient] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    writer: BlobWriter | None = None
    scan: HeaderScan | None = None
    facts: HeaderFacts | None = None
    # MX with [policy] authentication: the client's content is spooled here (memory, then a
    # temp file past 1 MiB) instead of the blob, so that at the end of DATA the verdict's
    # Authentication-Results field can go in front of it in the stored file.
    held: tempfile.SpooledTemporaryFile[bytes] | None = None
    # Submission: the refusal owed at the end of DATA when the header From names an address
    # the login may not send as (policy/sender.py), decided when the header section is complete.
    from_refusal: Reply | None = None
    # DMARC p=quarantine failed (the verdict our checks made, not header text): local
    # recipients get it in their Junk folder.
    junk: bool = False


class SmtpSession:
    def __init__(
        self,
        ctx: SmtpContext,
        service: str,
        settings: SessionSettings,
        link: SmtpLink,
    ) -> None:
        self.ctx = ctx
        self.service = service
        self.link = link
        self.cid = ctx.session_id()
        peer = cast(tuple[str, int], link.extra("peername") or ("unknown", 0))
        self.client_ip = str(peer[0])
        self.conn = ServerConnection(settings)
        self.tx = _Transaction()
        self.waiting_for_command = False
        self.authenticated_as: str | None = None
        self.task: asyncio.Task[None] | None = None
        # The MX's checks apply to this session at all: service smtp, [policy] set, client not trusted.
        inbound = ctx.inbound if service == "smtp" else None
        self.inbound = (
            inbound if inbound is not None and not inbound.trusted(self.client_ip) else None
        )
        self.refusal: Reply | None = None  # a DNSBL listing, answered at RCPT as Postfix does

    def _log(self, message: str) -> None:
        log.info("%s[%s]: %s", self.service, self.cid, message)

    def _log_connection(self, what: str) -> None:
        # Debug level: at info the log says one line per message (its envelope and reply), and
        # two more lines per connection cost about a tenth of the loop's time (issue 7 profile).
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s[%s]: %s [%s]", self.service, self.cid, what, self.client_ip)

    def _tls_description(self) -> str:
        return tls_util.describe(self.link.extra("ssl_object"))  # type: ignore[arg-type]

    async def run(self) -> None:
        self.task = asyncio.current_task()
        self.ctx.sessions.add(self)
        self._log_connection("connect from")
        try:
            if self.inbound is not None:
                await self._on_connect(self.inbound)
            await self._loop()
        except SendTimeout as exc:
            # The link has dropped the connection: its slot in the limits is free again.
            self._log(f"dropped [{self.client_ip}]: {exc} (limits.send_timeout)")
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            self._log(f"lost connection from [{self.client_ip}]: {type(exc).__name__}")
        except Exception:
            # A bug of ours must not look like a network fault to the client: say 421 and why.
            log.exception("%s[%s]: internal error", self.service, self.cid)
            try:
                self.conn.shutdown(
                    Reply(421, "4.3.0", "Internal error, closing connection; try again later")
                )
                await self._flush()
            except (ConnectionError, ssl.SSLError, RuntimeError):
                pass
        finally:
            self._abort_transaction()
            self.ctx.sessions.discard(self)
            try:
                self.link.close()
            except (ConnectionError, RuntimeError):
                pass
            self._log_connection("disconnect from")

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.link.send(data)

    def stopping(self) -> bool:
        return self.ctx.stopping

    async def _read(self) -> None:
        await self._flush()
        data = await self.link.read()
        if data is Idle.STOPPING:
            self.conn.shutdown(codes.SHUTTING_DOWN)
        elif data is Idle.TIMED_OUT:
            self.conn.shutdown(codes.TIMEOUT)
        else:
            self.conn.receive_data(data)

    async def _loop(self) -> None:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                await self._read()
            elif isinstance(event, DataChunk):
                await self._write_content(event.data)
            elif isinstance(event, RcptTo):
                conn.reply(await self._on_rcpt(event))
            elif isinstance(event, MailFrom):
                limited = self.inbound.on_mail(self.client_ip) if self.inbound else None
                if limited is not None:  # 421: the message rate limit closes the session
                    self._log_reject("MAIL", event.sender, None, limited)
                    conn.shutdown(limited)
                    continue
                conn.reply(await self._on_mail(event))
            elif isinstance(event, DataCommand):
                conn.reply(self._on_data())
            elif isinstance(event, EndOfData):
                conn.reply(await self._on_end_of_data(event))
            elif isinstance(event, AuthRequest):
                reply = await self._on_auth(event)
                conn.reply(reply, identity=self.authenticated_as)
            elif isinstance(event, Hello):
                continue
            elif isinstance(event, Reset | MessageTooBig):
                self._abort_transaction()
            elif isinstance(event, StartTLS):
                await self._start_tls()
            elif isinstance(event, Closed) or event is PAUSED:
                await self._flush()
                return

    async def _start_tls(self) -> None:
        await self._flush()
        assert self.ctx.tls_context is not None
        await self.link.start_tls(self.ctx.tls_context)
        self.conn.tls_started()
        self._log(f"STARTTLS: {self._tls_description()}")

    # ----------------------------------------------------------------- decisions

    async def _on_mail(self, event: MailFrom) -> Reply:
        user = self.conn.authenticated_user
        if user is not None and not await self.ctx.directory.may_send_as(user, event.sender):
            reply = codes.sender_not_owned(str(event.sender), user)
            self._log_reject("MAIL", event.sender, None, reply)
            return reply
        self.tx = _Transaction(sender=event.sender, mail=event)
        return codes.SENDER_OK

    async def _on_rcpt(self, event: RcptTo) -> Reply:
        recipient = event.recipient
        directory = self.ctx.directory
        if self.inbound is not None and self.conn.authenticated_user is None:
            refusal = self.refusal or self.inbound.on_rcpt(
                self.client_ip, str(self.tx.sender or ""), str(recipient)
            )
            if refusal is not None:
                self._log_reject("RCPT", self.tx.sender, recipient, refusal)
                return refusal
        if directory.is_local(recipient):
            resolution = await directory.resolve(recipient)
            if not resolution.found:
                reply = codes.user_unknown(str(recipient))
                self._log_reject("RCPT", self.tx.sender, recipient, reply)
                return reply
            self.tx.mailboxes += resolution.mailboxes
            self.tx.remote += [
                RemoteRecipient(r, event.orcpt, event.notify) for r in resolution.remote
            ]
        elif self.conn.authenticated_user is None:
            # Never an open relay: mail for other domains only from authenticated users.
            reply = codes.relay_denied(str(recipient))
            self._log_reject("RCPT", self.tx.sender, recipient, reply)
            return reply
        else:
            self.tx.remote.append(RemoteRecipient(str(recipient), event.orcpt, event.notify))
        self.tx.recipients.append(str(recipient) if recipient.domain else "postmaster")
        return codes.RECIPIENT_OK

    def _on_data(self) -> Reply:
        try:
            self.tx.writer = self.ctx.blobs.new_writer()
        except StorageFull:
            return codes.STORAGE_FULL
        except OSError:
            log.exception("%s[%s]: cannot create a queue file", self.service, self.cid)
            return codes.LOCAL_ERROR
        self.tx.scan = HeaderScan()
        if (
            self.inbound is not None
            and self.inbound.checks_content
            and self.conn.authenticated_user is None
        ):
            # Closed at the end of DATA or in _abort_transaction.
            self.tx.held = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                max_size=HELD_IN_MEMORY, dir=str(self.ctx.config.data_dir)
            )
        return codes.START_DATA

    async def _write_content(self, piece: bytes) -> None:
        tx = self.tx
        if tx.writer is None:
            return
        if tx.scan is not None:
            held = tx.scan.feed(piece)
            if held is None:
                return
            self._write_prefix()
            tx.facts = tx.scan.facts
            tx.scan = None
            await self._check_from(held, whole=False)
            piece = held
        self._keep(piece)

    def _keep(self, piece: bytes) -> None:
        if self.tx.held is not None:
            self.tx.held.write(piece)
        elif self.tx.writer is not None:
            self.tx.writer.write(piece)

    def _write_prefix(self) -> None:
        tx = self.tx
        assert tx.writer is not None and tx.scan is not None and tx.scan.facts is not None
        conn = self.conn
        user = conn.authenticated_user
        tls = self._tls_description() if conn.tls_active else ""
        header = received_header(
            helo=conn.helo_name,
            client_ip=self.client_ip,
            client_name=None,
            hostname=self.ctx.config.hostname,
            protocol=protocol_name(
                esmtp=conn.esmtp, tls=conn.tls_active, auth=user is not None, smtputf8=conn.smtputf8
            ),
            queue_id=tx.writer.blob_id,
            tls=tls,
            user=user,
            recipient=tx.recipients[0] if len(tx.recipients) == 1 else None,
        )
        if user is not None:
            header += submission_headers(tx.scan.facts, self.ctx.config.hostname, tx.writer.blob_id)
        tx.writer.write(header)

    async def _on_end_of_data(self, event: EndOfData) -> Reply:
        tx = self.tx
        writer = tx.writer
        if writer is None:
            return codes.LOCAL_ERROR
        if tx.scan is not None:
            rest = tx.scan.finish()
            self._write_prefix()
            tx.facts = tx.scan.facts
            tx.scan = None
            await self._check_from(rest, whole=True)
            self._keep(rest)
        facts = tx.facts
        subject = facts.subject if facts else ""
        hops = facts.received_count if facts else 0
        if hops > self.ctx.config.delivery.max_hops:
            reply = Reply(554, "5.4.6", "Too many hops")  # RFC 5321 §6.3: a mail loop
            self._log_done(event, reply, writer.blob_id)
            return reply
        if tx.from_refusal is not None:
            writer.abort()
            tx.writer = None
            self._log_done(event, tx.from_refusal, writer.blob_id)
            return tx.from_refusal
        if tx.held is not None and self.inbound is not None:
            refused = await self._check_message(self.inbound, writer, tx.held)
            tx.held = None
            if refused is not None:
                writer.abort()
                tx.writer = None
                self._log_done(event, refused, writer.blob_id)
                return refused
        mail = tx.mail
        sender = str(tx.sender) if tx.sender else ""
        mailboxes = tuple(tx.mailboxes)
        remote = tuple(tx.remote)
        junk = tx.junk
        # Recorded now, while the server knows it: the queue signs (DKIM) only these entries.
        submitted_by = self.conn.authenticated_user

        def message_for(blob: SpooledBlob) -> IncomingMessage:  # called in the fsync thread
            return IncomingMessage(
                blob=blob,
                sender=sender,
                mailboxes=mailboxes,
                remote=remote,
                subject=subject,
                envid=mail.envid if mail else None,
                ret=mail.ret if mail else None,
                smtputf8=bool(mail and mail.smtputf8),
                received_at=time.time(),
                submitted_by=submitted_by,
                requiretls=bool(mail and mail.requiretls),
                junk=junk,
            )

        try:
            # finish() fsyncs the file or removes it on failure: the writer is spent either way.
            tx.writer = None
            queue_id = await self.ctx.intake.accept(writer, message_for)
        except StorageFull:
            reply = codes.STORAGE_FULL
        except OSError:
            log.exception("%s[%s]: storing a message failed", self.service, self.cid)
            reply = codes.LOCAL_ERROR
        else:
            reply = codes.queued(queue_id)
        self._log_done(event, reply, writer.blob_id)
        return reply

    async def _on_connect(self, inbound: InboundPolicy) -> None:
        """Connection rate (421, before the greeting) and DNS blocklists (kept for RCPT)."""
        try:
            async with asyncio.timeout(POLICY_DNS_TIMEOUT):
                refusal = await inbound.on_connect(self.client_ip)
        except TimeoutError:
            refusal = None  # a slow blocklist never stops mail
        if refusal is not None and refusal.code == 421:
            self.conn.data_to_send()  # RFC 5321 §3.1: 421 instead of the 220 greeting
            self.conn.shutdown(refusal)
            self._log(f"NOQUEUE: reject: CONNECT from [{self.client_ip}]: {refusal}")
        else:
            self.refusal = refusal

    async def _check_message(
        self, inbound: InboundPolicy, writer: BlobWriter, held: tempfile.SpooledTemporaryFile[bytes]
    ) -> Reply | None:
        """SPF/DKIM/DMARC on the spooled content; on acceptance the Authentication-Results field,
        then the content, go into the blob. Returns the refusal (DMARC reject, or a header too
        long to check), or None. The content is read from the spool in pieces in worker
        threads, never whole: memory per session does not grow with the message (issue 12)."""
        loop = asyncio.get_running_loop()
        try:
            message = await loop.run_in_executor(None, hold, held)
            if message is None:
                return HEADER_TOO_LARGE
            conn = self.conn
            try:
                async with asyncio.timeout(POLICY_DNS_TIMEOUT * 2):
                    verdict = await inbound.on_message(
                        self.client_ip, conn.helo_name or "", str(self.tx.sender or ""), message
                    )
            except TimeoutError:
                verdict = None  # the header then says nothing, rather than refusing good mail
            if verdict is not None and verdict.reject is not None:
                return verdict.reject
            prefix = verdict.prefix if verdict is not None else b""
            self.tx.junk = verdict is not None and verdict.junk
            await loop.run_in_executor(
                None, write_checked, message, prefix, self.ctx.config.hostname, writer.write
            )
            return None
        finally:
            held.close()

    async def _check_from(self, content: bytes, *, whole: bool) -> None:
        """Submission: the header From of the content's start (``whole``: all of the content)
        must name only addresses the login may send as, the rule MAIL FROM follows."""
        user = self.conn.authenticated_user
        if user is None:
            return
        if content.startswith(b"\r\n"):
            header: bytes | None = b""
        else:
            end = content.find(b"\r\n\r\n", 0, HEADER_SCAN_LIMIT + 4)
            header = content[: end + 2] if end >= 0 else content if whole else None
        self.tx.from_refusal = await check_from(self.ctx.directory, user, header)

    def _abort_transaction(self) -> None:
        if self.tx.held is not None:
            self.tx.held.close()
        if self.tx.writer is not None:
            self.tx.writer.abort()
        self.tx = _Transaction()

    async def _on_auth(self, event: AuthRequest) -> Reply:
        throttle = self.ctx.throttle
        if throttle.locked(self.client_ip):
            self._log(f"AUTH refused: [{self.client_ip}] is locked out after repeated failures")
            return codes.AUTH_LOCKED_OUT
        username = event.username.strip().lower()
        if event.authzid and event.authzid.lower() != username:
            ok = False  # acting as someone else is not something ordinary users may do
        else:
            user = await self.ctx.directory.accounts.get_user(username)
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(
                None, verify_password, user.password_hash if user else None, event.password
            )
        if ok:
            throttle.success(self.client_ip)
            self._log(f"AUTH {event.mechanism} user={username} ok")
            self.authenticated_as = username
            return codes.AUTH_OK
        delay = throttle.failure(self.client_ip)
        self._log(f"AUTH {event.mechanism} user={username} failed")
        if self.ctx.metrics is not None:
            self.ctx.metrics.auth_failed(self.service)
        if throttle.locked(self.client_ip):
            return codes.AUTH_LOCKED_OUT
        if delay:
            await asyncio.sleep(delay)
        return codes.AUTH_INVALID

    # ----------------------------------------------------------------- logging

    def _log_reject(
        self, stage: str, sender: Address | None, rcpt: Address | None, reply: Reply
    ) -> None:
        user = self.conn.authenticated_user
        parts = [f"NOQUEUE: reject: {stage} from [{self.client_ip}]: {reply}"]
        parts.append(f"from=<{sender or ''}>")
        if rcpt is not None:
            parts.append(f"to=<{rcpt}>")
        if user:
            parts.append(f"user={user}")
        parts.append(f"helo=<{self.conn.helo_name or ''}>")
        self._log("; ".join(parts))
        if self.ctx.metrics is not None:
            self.ctx.metrics.refused(self.service, stage, reply)

    def _log_done(self, event: EndOfData, reply: Reply, queue_id: str) -> None:
        tx = self.tx
        user = self.conn.authenticated_user
        rcpts = ",".join(f"<{r}>" for r in tx.recipients)
        extra = f" bare_newlines={event.bare_newlines}" if event.bare_newlines else ""
        self._log(
            f"{queue_id}: client=[{self.client_ip}] user={user or '-'} from=<{tx.sender or ''}>"
            f" to={rcpts} size={event.size}{extra} status={reply}"
        )
        if self.ctx.metrics is not None:
            self.ctx.metrics.message(self.service, reply)


class SmtpLink(SessionLink):
    """One SMTP connection (net/link.py)."""

    def __init__(self, ctx: SmtpContext, service: str, settings: SessionSettings) -> None:
        implicit_tls = ctx.tls_context if settings.tls_active else None  # submissions (RFC 8314)
        super().__init__(
            COMMAND_TIMEOUT,
            BUFFER_LIMIT,
            ctx.connections,
            implicit_tls,
            send_timeout=ctx.config.send_timeout,  # a client that stops reading is dropped
        )
        self.ctx = ctx
        self.service = service
        self.settings = settings

    def start_session(self) -> SmtpSession:
        return SmtpSession(self.ctx, self.service, self.settings, self)

    def refusal(self, refused: Refusal) -> bytes:
        # RFC 5321 §3.1: instead of the 220 greeting, a 421 and the server closes. The wording
        # for one client's connections is Postfix's (smtpd_client_connection_count_limit).
        if refused.in_all:
            return TOO_MANY_CONNECTIONS_IN_ALL.to_bytes()
        text = f"Error: too many connections from [{refused.client}]"
        return Reply(421, "4.7.0", text).to_bytes()


TOO_MANY_CONNECTIONS_IN_ALL = Reply(421, "4.3.2", "Error: too many connections; try again later")


def settings_for(service: str, config: Config, loopback: bool, tls_ready: bool) -> SessionSettings:
    """The behaviour of each kind of listener (RFC 6409 for submission, RFC 8314 for port 465)."""
    plaintext_ok = config.allow_plaintext_auth_on_loopback and loopback
    common = {
        "hostname": config.hostname,
        "max_message_size": config.max_message_size,
        "max_recipients": config.max_recipients,
    }
    if service == "smtp":
        return SessionSettings(tls_available=tls_ready, **common)  # type: ignore[arg-type]
    if service == "submission":
        return SessionSettings(
            tls_available=tls_ready,
            auth_enabled=True,
            auth_requires_tls=not plaintext_ok,
            require_tls=not plaintext_ok,
            require_auth=True,
            requiretls=True,  # RFC 8689: offered once STARTTLS is done
            **common,  # type: ignore[arg-type]
        )
    if service == "submissions":
        return SessionSettings(
            tls_active=True,
            auth_enabled=True,
            require_auth=True,
            requiretls=True,
            **common,  # type: ignore[arg-type]
        )
    raise ValueError(service)
