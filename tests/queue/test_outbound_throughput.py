"""What makes outbound delivery fast (issue 7), seen from the remote's side: many messages over a
few reused connections, PIPELINING when offered (RFC 2920), a small message and its final dot in
one write, and the queue's bookkeeping in group transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Self

from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes
from tests.queue.harness import running_queue
from todoku.net.smtp_client import Envelope, SmtpSession, Timeouts, open_session

ALICE = "alice@example.test"
QUICK = Timeouts(connect=5, greeting=5, command=5, data_block=5, end_of_data=5)


async def test_a_burst_shares_few_connections_and_all_arrive(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    count = 60
    # The slow greeting lets the whole burst queue up behind the first connections.
    with fake_mxes("127.0.0.2", greeting_delay=0.5) as (mx,):
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, max_connections=3
        ) as q:
            # Submitted together (one group commit), as a burst arrives at a busy server.
            await asyncio.gather(
                *(
                    q.submit(
                        [f"user{n}@remote.test"], body=f"Subject: {n}\r\n\r\nbody {n}\r\n".encode()
                    )
                    for n in range(count)
                )
            )
            await q.wait(lambda: not q.store.list_queue(), timeout=60)
            assert q.mailbox(ALICE) == []  # nothing bounced
    assert sorted(m.recipients[0] for m in mx.messages) == sorted(
        f"user{n}@remote.test" for n in range(count)
    )
    assert mx.connections <= 3  # reused: many messages per connection
    assert mx.max_concurrent <= 3


class RecordingMx:
    """A scripted SMTP server on loopback that keeps every chunk it reads, to see how the
    client grouped its writes."""

    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.chunks: list[bytes] = []
        self.messages = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.remote.test ESMTP\r\n")
        buffer = b""
        in_data = False
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                self.chunks.append(chunk)
                buffer += chunk
                replies = []
                while True:
                    if in_data:
                        end = buffer.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        buffer = buffer[end + 5 :]
                        in_data = False
                        self.messages += 1
                        replies.append(b"250 2.0.0 Ok\r\n")
                        continue
                    line, found, rest = buffer.partition(b"\r\n")
                    if not found:
                        break
                    buffer = rest
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                        replies.append(b"250-mx.remote.test\r\n" + extensions + b"250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        in_data = True
                        buffer = b"\r\n" + buffer  # the terminator search needs the CRLF before "."
                        replies.append(b"354 go ahead\r\n")
                    elif verb == b"QUIT":
                        writer.write(b"221 bye\r\n")
                        await writer.drain()
                        return
                    else:
                        replies.append(b"250 Ok\r\n")
                writer.write(b"".join(replies))
                await writer.drain()
        finally:
            writer.close()


async def send_two(port: int) -> None:
    session = await open_session(
        "mx.remote.test",
        "127.0.0.1",
        port,
        helo_name="client.test",
        tls_context=None,
        timeouts=QUICK,
    )
    assert isinstance(session, SmtpSession)
    body = b"Subject: hi\r\n\r\n" + b"line of text\r\n" * 200
    for number in range(2):
        outcomes = await session.send(
            Envelope(
                sender="a@example.test",
                recipients=(
                    (f"b{number}@remote.test", (), None),
                    (f"c{number}@remote.test", (), None),
                ),
                size=len(body),
                open_content=lambda: [body[:1000], body[1000:]],
            )
        )
        assert [o.code for o in outcomes] == [250, 250]
    await session.close()


async def test_pipelining_when_offered_sends_the_envelope_and_the_message_in_one_write_each() -> (
    None
):
    async with RecordingMx(pipelining=True) as mx:
        await send_two(mx.port)
    envelopes = [c for c in mx.chunks if c.startswith(b"MAIL FROM")]
    assert len(envelopes) == 2
    for chunk in envelopes:  # RFC 2920 §3.1: MAIL, every RCPT and DATA in one group
        assert chunk.count(b"RCPT TO") == 2 and chunk.endswith(b"DATA\r\n")
    contents = [c for c in mx.chunks if c.startswith(b"Subject: hi")]
    assert len(contents) == 2 and all(c.endswith(b"\r\n.\r\n") for c in contents)
    assert mx.messages == 2


async def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    async with RecordingMx(pipelining=False) as mx:
        await send_two(mx.port)
    commands = [c for c in mx.chunks if c[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert all(c.count(b"\r\n") == 1 for c in commands)  # one command per write
    assert len(commands) == 2 * 4
    assert mx.messages == 2


async def test_a_new_connection_reuses_the_route_for_its_ttl(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")  # TTL 60 s (tests/dnsserver.py)
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    with fake_mxes("127.0.0.2") as (mx,):
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(["first@remote.test"])
            await q.wait(lambda: not q.store.list_queue())
            asked = [query for query in dns_server.queries if query[0].rstrip(".") == "remote.test"]
            await asyncio.sleep(1.5)  # longer than the idle wait: the connection is closed
            await q.submit(["second@remote.test"])
            await q.wait(lambda: not q.store.list_queue())
            asked_again = [
                query for query in dns_server.queries if query[0].rstrip(".") == "remote.test"
            ]
    assert len(mx.messages) == 2 and mx.connections == 2
    assert asked and asked_again == asked  # no MX question for the second connection
