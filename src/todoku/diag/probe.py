"""Step-by-step SMTP dialogue for diagnosis, on top of the outbound client's own session.

The queue's ``open_session`` does greeting, EHLO and STARTTLS in one call and falls back
silently; a diagnosis needs to see each step, so this module dials itself and then drives the
same ``SmtpSession`` (and its sans-I/O ``ClientConnection``) one command at a time. Every wait is
bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from todoku.net.smtp_client import SmtpSession, Stopped, Timeouts
from todoku.proto.smtp import client as proto
from todoku.proto.smtp.client import ServerReply

AUTH = "auth"


class Failed(Exception):
    """No usable reply: the connection closed, timed out or broke during ``phase``."""

    def __init__(self, phase: str, text: str, timed_out: bool) -> None:
        super().__init__(text)
        self.phase, self.text, self.timed_out = phase, text, timed_out


async def dial(
    host: str,
    address: str,
    port: int,
    timeout: float,
    *,
    implicit_tls: ssl.SSLContext | None = None,
) -> SmtpSession:
    """Open TCP (and TLS at once for implicit TLS). Raises TimeoutError, OSError or ssl.SSLError."""
    family = socket.AF_INET6 if ":" in address else (socket.AF_INET if address[:1].isdigit() else 0)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            address,
            port,
            family=family,
            limit=1024 * 1024,
            ssl=implicit_tls,
            server_hostname=host if implicit_tls is not None else None,
            ssl_handshake_timeout=timeout if implicit_tls is not None else None,
        )
    timeouts = Timeouts(
        connect=timeout, greeting=timeout, command=timeout, data_block=timeout, end_of_data=timeout
    )
    return SmtpSession(host, address, port, reader, writer, timeouts)


class OtherService(Failed):
    """The server greeted in another mail protocol: ``service`` is "POP3" or "IMAP"."""

    def __init__(self, service: str, line: str) -> None:
        super().__init__(proto.GREETING, line, False)
        self.service = service


# Enough for any greeting line's start; more is never read before the line is classified.
GREETING_PEEK = 512


def other_service(first: bytes) -> str | None:
    """The mail protocol a greeting belongs to when it is not SMTP's: POP3 greets with "+OK"
    (RFC 1939 §4), IMAP with "* OK", "* PREAUTH" or "* BYE" (RFC 9051 §7.1). An SMTP greeting
    starts with three digits (RFC 5321 §4.2), so neither can be mistaken for one."""
    if first.startswith(b"+OK"):
        return "POP3"
    if first.startswith((b"* OK", b"* PREAUTH", b"* BYE")):
        return "IMAP"
    return None


def _failed(stop: Stopped) -> Failed:
    failure = stop.outcome
    return Failed(failure.phase, failure.text, "timed out" in failure.text)


async def greeting(session: SmtpSession, timeout: float | None = None) -> ServerReply:
    """The server's greeting; raises OtherService when a POP3 or IMAP server answered, Failed
    when none came within ``timeout`` (default: the session's greeting timeout)."""
    wait = session.timeouts.greeting if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    first = b""
    try:
        async with asyncio.timeout(wait):
            while b"\n" not in first and len(first) < GREETING_PEEK:
                data = await session.reader.read(GREETING_PEEK - len(first))
                if not data:
                    break
                first += data
    except TimeoutError:
        raise Failed(
            proto.GREETING, f"timed out after {wait:g} s waiting for the greeting", True
        ) from None
    except (ConnectionError, OSError) as exc:
        raise Failed(proto.GREETING, f"lost connection during the greeting: {exc}", False) from None
    service = other_service(first)
    if service is not None:
        line = first.split(b"\n", 1)[0].rstrip(b"\r")
        raise OtherService(service, line.decode("utf-8", "replace")[:200])
    if first:
        session.conn.receive_data(first)
    try:
        remaining = max(deadline - loop.time(), 0.001)
        return (await session._read_reply(proto.GREETING, remaining)).reply
    except Stopped as stop:
        raise _failed(stop) from None


async def command(session: SmtpSession, data: bytes, phase: str) -> ServerReply:
    try:
        return (await session._command(data, phase, session.timeouts.command)).reply
    except Stopped as stop:
        raise _failed(stop) from None


async def ehlo(session: SmtpSession, helo_name: str) -> ServerReply:
    reply = await command(session, session.conn.ehlo(helo_name), proto.EHLO)
    if reply.code != 250 and not session.conn.closed:
        # RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        helo = await command(session, session.conn.helo(helo_name), proto.HELO)
        if helo.code == 250:
            return helo
    return reply


async def start_tls(session: SmtpSession, context: ssl.SSLContext, server_hostname: str) -> str:
    """Upgrade after a 220 to STARTTLS; returns "TLSv1.3 CIPHER". Raises ssl.SSLError etc."""
    async with asyncio.timeout(session.timeouts.command):
        await session.writer.start_tls(context, server_hostname=server_hostname or None)
    session.conn.tls_started()  # RFC 3207 §4.2: the client forgets what it knew before TLS
    return tls_description(session)


def tls_description(session: SmtpSession) -> str:
    ssl_object = session.writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return ""
    cipher = ssl_object.cipher()
    session.tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()
    return session.tls


async def auth(session: SmtpSession, line: str) -> ServerReply:
    """One AUTH line (or a SASL continuation line); the caller never logs ``line``."""
    return await command(session, session.conn._command(AUTH, line), AUTH)


async def finish(session: SmtpSession) -> None:
    """RSET then QUIT (no message is ever sent), then close; never raises."""
    try:
        if session.usable and not session.conn.closed:
            await command(session, session.conn.rset(), proto.RSET)
    except Failed:
        session.usable = False
    await session.close()


async def abort(session: SmtpSession) -> None:
    session.usable = False
    await session.close()


def verifying_context() -> ssl.SSLContext:
    """What a mail program does: the system's CAs, the server name checked."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def trusting_context() -> ssl.SSLContext:
    """For going on after a certificate problem was reported, to check the remaining steps."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
