"""Scripted remote MX servers for outbound tests, each on its own loopback address.

Every fake runs an asyncio server in a background thread on 127.0.0.N at one shared port (the
``delivery.port`` the server under test dials). The script is a few plain fields: what the
greeting says, which EHLO keywords are offered, and functions from the recipient to the RCPT
reply and from the message to the end-of-data reply. "timeout" never greets; "close" hangs up.
Everything received is kept in ``messages`` for the test to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

USER_UNKNOWN = (
    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
)


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_params: str
    rcpt_params: list[str]
    tls: bool


def default_rcpt(address: str) -> str:
    if address.split("@")[0].startswith("unknown"):
        return USER_UNKNOWN.format(rcpt=address)
    return "250 2.1.5 Ok"


@dataclass
class FakeMx:
    host: str
    port: int = 0
    mode: str = "normal"  # "normal", "timeout", "close"
    greeting: str = "220 {host} ESMTP fake"
    extensions: tuple[str, ...] = ("PIPELINING", "SIZE 10240000", "8BITMIME", "DSN", "SMTPUTF8")
    rcpt_reply: Callable[[str], str] = default_rcpt
    data_reply: Callable[[Received], str] = lambda m: "250 2.0.0 Ok: queued as FAKE"
    tls_context: ssl.SSLContext | None = None
    greeting_delay: float = 0.0
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    max_concurrent: int = 0
    _concurrent: int = 0

    def start(self) -> FakeMx:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._error: BaseException | None = None

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001
                self._error = exc
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"{self.host}: expected {count} messages, got {len(self.messages)}")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            self._concurrent -= 1
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "close":
            return
        if self.mode == "timeout":
            await asyncio.sleep(3600)
            return

        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        if self.greeting_delay:
            await asyncio.sleep(self.greeting_delay)
        await say(self.greeting.format(host=self.host))
        if not self.greeting.startswith("220"):
            return
        tls = False
        sender, recipients, mail_params, rcpt_params = "", [], "", []
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                offered = list(self.extensions)
                if self.tls_context is not None and not tls:
                    offered.append("STARTTLS")
                lines = [f"{self.host}"] + offered
                for index, text in enumerate(lines):
                    await say(f"250{'-' if index < len(lines) - 1 else ' '}{text}")
            elif verb == "STARTTLS" and self.tls_context is not None:
                await say("220 2.0.0 Ready to start TLS")
                await writer.start_tls(self.tls_context)
                tls = True
            elif verb == "MAIL":
                path, _, mail_params = command[10:].partition(" ")
                sender = path.strip("<>")
                recipients, rcpt_params = [], []
                await say("250 2.1.0 Ok")
            elif verb == "RCPT":
                path, _, params = command[8:].partition(" ")
                address = path.strip("<>")
                reply = self.rcpt_reply(address)
                if reply.startswith("2"):
                    recipients.append(address)
                    rcpt_params.append(params)
                await say(reply)
                if reply.startswith("421"):
                    return
            elif verb == "DATA":
                if not recipients:
                    await say("554 5.5.1 Error: no valid recipients")
                    continue
                await say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    chunk = await reader.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    lines.append(chunk[1:] if chunk.startswith(b".") else chunk)
                data = b"".join(lines)
                message = Received(sender, recipients, data, mail_params, rcpt_params, tls)
                reply = self.data_reply(message)
                if reply.startswith("2"):
                    self.messages.append(message)
                await say(reply)
                if reply.startswith("421"):
                    return
            elif verb == "RSET":
                recipients = []
                await say("250 2.0.0 Ok")
            elif verb == "QUIT":
                await say("221 2.0.0 Bye")
                return
            else:
                await say("502 5.5.2 Error: command not recognized")


def server_tls_context(directory: Path) -> ssl.SSLContext:
    from todoku.net.tls import make_self_signed

    cert, key = directory / "fake-cert.pem", directory / "fake-key.pem"
    if not cert.exists():
        make_self_signed(cert, key, "mx.fake.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def fake_mxes(*hosts: str, **options: object) -> Iterator[list[FakeMx]]:
    """Start one fake per loopback address, all on one free port (retrying if it is taken)."""
    for _ in range(20):
        started: list[FakeMx] = []
        try:
            first = FakeMx(hosts[0], 0, **options).start()  # type: ignore[arg-type]
            started.append(first)
            for host in hosts[1:]:
                started.append(FakeMx(host, first.port, **options).start())  # type: ignore[arg-type]
        except OSError:
            for mx in started:
                mx.stop()
            continue
        try:
            yield started
        finally:
            for mx in started:
                mx.stop()
        return
    raise RuntimeError("no common free port for the fake MX servers")
