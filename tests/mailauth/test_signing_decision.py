"""Issue 12, finding 2: the queue decides DKIM signing from the entry's record
(``submitted_by``, written by the server when it accepted the message), never from header text.

The real runner, SQLite store, loopback DNS and a fake MX; two entries with the very same content,
whose first field is a Received field of ours naming an authenticated sender: only the one the
server recorded as an authenticated submission leaves signed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes
from tests.queue.harness import Queue, running_queue
from todoku.ingest import received_header
from todoku.mailauth.dkim import KeyStore, Signer, signature_keys
from todoku.store.api import IncomingMessage, RemoteRecipient

BODY = b"From: Alice <alice@example.test>\r\nTo: <bob@remote.test>\r\nSubject: {}\r\n\r\nhello\r\n"


def ours(subject: str) -> bytes:
    """What the old check took for proof: the server's own Received field, on top, naming an
    authenticated sender (a recipient address or a forged field can carry the same text)."""
    received = received_header(
        helo="pc",
        client_ip="192.0.2.8",
        client_name=None,
        hostname="mx.example.test",
        protocol="ESMTPSA",
        queue_id="Q1",
        tls="",
        user="alice@example.test",
        recipient=None,
    )
    return received + BODY.replace(b"{}", subject.encode())


async def commit(queue: Queue, content: bytes, submitted_by: str | None) -> None:
    writer = queue.store.new_blob()
    writer.write(content)
    blob = await asyncio.to_thread(writer.finish)
    await queue.store.commit(
        IncomingMessage(
            blob=blob,
            sender="alice@example.test",
            remote=(RemoteRecipient("bob@remote.test"),),
            received_at=time.time(),
            subject="x",
            submitted_by=submitted_by,
        )
    )


async def test_only_entries_recorded_as_submissions_are_signed(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    signer = Signer(KeyStore(tmp_path / "keys"), ("example.test",))
    with fake_mxes("127.0.0.2") as (mx,):
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as queue:
            queue.runner.signer = signer.outbound_prefix
            await commit(queue, ours("forwarded"), None)
            await commit(queue, ours("submitted"), "alice@example.test")
            await queue.wait(lambda: len(mx.messages) == 2)
    sent = {b"forwarded" in m.data: m.data for m in mx.messages}
    assert signature_keys(sent[True]) == []
    assert [d for d, _ in signature_keys(sent[False])] == ["example.test", "example.test"]
