"""Issue 16: ``diagnose --submission`` names a POP3 or IMAP server for what it is, and with
``--tls auto`` tries TLS when a port other than 465 stays silent. Real sockets on loopback:
small servers here that only greet (or only wait), and ``probe.other_service`` without sockets."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from todoku.diag.probe import other_service
from todoku.diag.submission import diagnose_submission
from todoku.net.tls import make_self_signed, server_context

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]


@asynccontextmanager
async def listening(
    greeting: bytes | None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """A loopback server that sends ``greeting`` (None: says nothing) and then waits."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if greeting is not None:
            writer.write(greeting)
            await writer.drain()
        await reader.read()  # until the client goes

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def check(port: int, tls_mode: str = "auto", timeout: float = 5.0) -> dict[str, str]:
    report = await diagnose_submission(
        f"127.0.0.1:{port}",
        user="alice@example.test",
        password="secret password",
        sender="alice@example.test",
        tls_mode=tls_mode,
        helo_name="laptop.test",
        lang="en",
        timeout=timeout,
    )
    failed = report.failed_step
    assert failed is not None
    return {
        "steps": " ".join(s.name for s in report.steps),
        "failed": failed.name,
        "cause": failed.cause,
        "remedy": failed.remedy,
        "detail": failed.detail,
        "tls": next((s.detail for s in report.steps if s.name == "tls"), ""),
    }


def test_greetings_of_other_mail_protocols_are_recognised() -> None:
    assert other_service(b"+OK POP3 ready <1.2@mx>\r\n") == "POP3"
    assert other_service(b"* OK [CAPABILITY IMAP4rev1] ready\r\n") == "IMAP"
    assert other_service(b"* PREAUTH IMAP4rev2 logged in\r\n") == "IMAP"
    assert other_service(b"220 mx.example.test ESMTP\r\n") is None
    assert other_service(b"554 5.7.1 no service\r\n") is None
    assert other_service(b"") is None


@pytest.mark.parametrize(
    ("greeting", "service"),
    [
        (b"+OK Dovecot ready.\r\n", "POP3"),
        (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n", "IMAP"),
    ],
)
async def test_a_pop3_or_imap_port_is_named_not_blamed_on_a_block_list(
    greeting: bytes, service: str
) -> None:
    async with listening(greeting) as port:
        result = await check(port)
    assert result["failed"] == "greeting"
    assert f"is a {service} server, for reading mail" in result["cause"]
    assert "block list" not in result["cause"] + result["remedy"]
    assert "587" in result["remedy"] and greeting.decode().strip() in result["detail"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tls")
    make_self_signed(root / "cert.pem", root / "key.pem", "localhost")
    return root / "cert.pem", root / "key.pem"


async def test_auto_tries_implicit_tls_when_a_port_other_than_465_stays_silent(
    tls_files: tuple[Path, Path],
) -> None:
    # Implicit TLS on a port that is not 465; behind it a POP3S server, so the run also shows
    # that the greeting after the TLS handshake is read and recognised.
    async with listening(b"+OK POP3S ready\r\n", server_context(*tls_files)) as port:
        result = await check(port)
    assert result["steps"] == "connect tls greeting", result
    assert "implicit TLS, tried after no plain-text greeting in 3 s" in result["tls"]
    assert result["failed"] == "greeting" and "is a POP3 server" in result["cause"]


async def test_auto_says_when_neither_greeting_nor_tls_comes() -> None:
    async with listening(None) as port:
        result = await check(port, timeout=1.0)
    assert result["failed"] == "greeting", result
    assert "neither greeted nor answered a TLS hello" in result["cause"]
    assert "no greeting in 1 s" in result["detail"]


async def test_starttls_mode_still_reports_the_silence_as_expecting_tls() -> None:
    # Told STARTTLS explicitly, no fallback: the old answer (this port wants TLS from the start).
    async with listening(None) as port:
        result = await check(port, tls_mode="starttls", timeout=1.0)
    assert result["failed"] == "greeting" and "SSL/TLS" in result["remedy"]
