"""How a message reaches a hop. The runner talks to a ``Transport`` (after httpx): the real one
speaks SMTP through ``net.smtp_client``; tests pass ``MockTransport(handler)``.

Failure taxonomy an Attempt can carry (phase → meaning):
  connect/greeting/ehlo/helo/starttls  the hop could not take mail at all (try the next hop)
  mail/rcpt/data/end-of-data           the hop answered this message; the reply decides
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from todoku.net.smtp_client import Envelope, RecipientOutcome, SessionFailure, SmtpSession, Timeouts
from todoku.net.smtp_client import open_session as smtp_open_session
from todoku.queue.model import Attempt, Hop, Verdict, status_for


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


class Channel(Protocol):
    @property
    def remote_mta(self) -> str: ...

    @property
    def usable(self) -> bool:
        """False once the connection cannot carry another message (closed, 421, error)."""
        ...

    async def send(self, message: OutboundMessage) -> list[Attempt]: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def connect(self, hop: Hop) -> Channel | Attempt:
        """An open channel, or an Attempt (recipient "") saying why the hop takes no mail."""
        ...


def verdict_for(code: int | None) -> Verdict:
    if code is not None and 200 <= code < 300:
        return Verdict.DELIVERED
    if code is not None and code >= 500:
        return Verdict.PERMANENT
    return Verdict.TEMPORARY  # 4xx, and every failure without a reply (RFC 5321 §4.2.1, §4.5.4.1)


def attempt_from(outcome: RecipientOutcome | SessionFailure, recipient: str) -> Attempt:
    verdict = verdict_for(outcome.code)
    if outcome.code is None:
        # No reply at all: RFC 3463 4.4.1 (no answer from host) / 4.4.2 (bad connection).
        status = "4.4.1" if outcome.phase == "connect" else "4.4.2"
    else:
        status = status_for(verdict, outcome.code, outcome.enhanced)
    return Attempt(
        recipient, verdict, outcome.phase, outcome.code, outcome.enhanced, outcome.text,
        outcome.remote_mta, "", status,
    )


class _SmtpChannel:
    def __init__(self, session: SmtpSession) -> None:
        self.session = session
        self.remote_mta = session.remote_mta

    @property
    def usable(self) -> bool:
        return self.session.usable and not self.session.conn.closed

    async def send(self, message: OutboundMessage) -> list[Attempt]:
        envelope = Envelope(
            sender=message.sender,
            recipients=message.recipients,
            size=message.size,
            open_content=message.open_content,
            smtputf8=message.smtputf8,
            ret=message.ret,
            envid=message.envid,
        )
        outcomes = await self.session.send(envelope)
        dsn = self.session.conn.supports("DSN")
        return [replace(attempt_from(o, o.recipient), dsn_handed_over=dsn) for o in outcomes]

    async def close(self) -> None:
        await self.session.close()


@dataclass
class SmtpTransport:
    helo_name: str
    port: int = 25
    tls_context: ssl.SSLContext | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)

    async def connect(self, hop: Hop) -> Channel | Attempt:
        result = await smtp_open_session(
            hop.host, hop.ip, self.port, helo_name=self.helo_name, tls_context=self.tls_context,
            timeouts=self.timeouts,
        )
        if isinstance(result, SessionFailure):
            return attempt_from(result, "")
        return _SmtpChannel(result)


Handler = Callable[[Hop, OutboundMessage | None], list[Attempt] | Attempt | None]


@dataclass
class MockTransport:
    """``handler(hop, None)`` at connect (None = accept, Attempt = refuse); then
    ``handler(hop, message)`` per message → one Attempt per recipient."""

    handler: Handler

    async def connect(self, hop: Hop) -> Channel | Attempt:
        refused = self.handler(hop, None)
        if isinstance(refused, Attempt):
            return refused
        return _MockChannel(self.handler, hop)


class _MockChannel:
    def __init__(self, handler: Handler, hop: Hop) -> None:
        self.handler = handler
        self.hop = hop
        self.remote_mta = f"{hop.host} [{hop.ip}]"
        self.usable = True

    async def send(self, message: OutboundMessage) -> list[Attempt]:
        result = self.handler(self.hop, message)
        assert isinstance(result, list)
        return result

    async def close(self) -> None:
        self.usable = False
