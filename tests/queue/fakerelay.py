"""A smarthost for tests: the project's own SMTP server core (``proto.smtp.server``) behind a
small asyncio driver, with STARTTLS or implicit TLS from a trustme test CA and AUTH.

It runs on the test's event loop, on 127.0.0.1 at a free port. Replies to RCPT and to the end of
the message are scripted; everything it took is kept in ``messages``, each login in ``logins``,
and every byte it read before TLS in ``clear_text`` (to prove nothing secret went in clear).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import trustme

from todoku.proto.smtp import codes
from todoku.proto.smtp.codes import Reply
from todoku.proto.smtp.events import (
    NEED_DATA,
    AuthRequest,
    Closed,
    DataChunk,
    DataCommand,
    EndOfData,
    MailFrom,
    RcptTo,
    StartTLS,
)
from todoku.proto.smtp.server import ServerConnection, SessionSettings

RELAY_NAME = "relay.provider.test"
QUEUED = Reply(250, "2.0.0", "Ok: queued as RELAYED")


@dataclass
class Relayed:
    sender: str
    recipients: list[str]
    data: bytes
    user: str | None


@dataclass
class FakeRelay:
    tls_context: ssl.SSLContext
    implicit: bool = False
    users: dict[str, str] = field(default_factory=dict)  # login → password
    rcpt_reply: Callable[[str], Reply] = lambda address: codes.RECIPIENT_OK
    data_reply: Reply = QUEUED
    messages: list[Relayed] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)
    clear_text: bytearray = field(default_factory=bytearray)
    connections: int = 0
    # Seconds between taking a message and saying 250: a slow relay, so that a test can kill
    # the sender while the relay has the message and the sender does not know it yet.
    data_delay: float = 0.0
    port: int = 0

    async def start(self) -> FakeRelay:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.tls_context if self.implicit else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(
            ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError
        ):
            await self._session(reader, writer)
        writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ServerConnection(
            SessionSettings(
                hostname=RELAY_NAME,
                tls_available=not self.implicit,
                tls_active=self.implicit,
                auth_enabled=True,
                require_tls=True,
                require_auth=bool(self.users),
            )
        )
        sender, recipients, content = "", list[str](), bytearray()
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                writer.write(conn.data_to_send())
                await writer.drain()
                data = await reader.read(65536)
                if not conn.tls_active:
                    self.clear_text += data
                conn.receive_data(data)
            elif isinstance(event, StartTLS):
                writer.write(conn.data_to_send())
                await writer.drain()
                await writer.start_tls(self.tls_context)
                conn.tls_started()
            elif isinstance(event, AuthRequest):
                accepted = self.users.get(event.username) == event.password
                self.logins.append((event.username, accepted))
                conn.reply(codes.AUTH_OK if accepted else codes.AUTH_INVALID)
            elif isinstance(event, MailFrom):
                sender, recipients, content = str(event.sender or ""), [], bytearray()
                conn.reply(codes.SENDER_OK)
            elif isinstance(event, RcptTo):
                reply = self.rcpt_reply(str(event.recipient))
                if reply.is_positive:
                    recipients.append(str(event.recipient))
                conn.reply(reply)
            elif isinstance(event, DataCommand):
                conn.reply(codes.START_DATA)
            elif isinstance(event, DataChunk):
                content += event.data
            elif isinstance(event, EndOfData):
                if self.data_reply.is_positive:
                    self.messages.append(
                        Relayed(sender, recipients, bytes(content), conn.authenticated_user)
                    )
                if self.data_delay:
                    await asyncio.sleep(self.data_delay)
                conn.reply(self.data_reply)
            elif isinstance(event, Closed):
                writer.write(conn.data_to_send())
                await writer.drain()
                return


@dataclass
class RelayCa:
    """A trustme CA written to ``ca.pem``, and server contexts for names it certifies."""

    ca: trustme.CA
    ca_file: str

    def server_context(self, *names: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*names).configure_cert(context)
        return context


def make_ca(directory: str) -> RelayCa:
    ca = trustme.CA()
    path = f"{directory}/ca.pem"
    ca.cert_pem.write_to_path(path)
    return RelayCa(ca, path)


@contextlib.asynccontextmanager
async def fake_relay(context: ssl.SSLContext, **options: object) -> AsyncIterator[FakeRelay]:
    relay = await FakeRelay(context, **options).start()  # type: ignore[arg-type]
    try:
        yield relay
    finally:
        await relay.stop()


@contextlib.contextmanager
def threaded_relay(context: ssl.SSLContext, **options: object) -> Iterator[FakeRelay]:
    """The same relay on an event loop of its own, for tests that drive a ``todoku serve``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    relay = FakeRelay(context, **options)  # type: ignore[arg-type]
    asyncio.run_coroutine_threadsafe(relay.start(), loop).result(10)
    try:
        yield relay
    finally:
        asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
