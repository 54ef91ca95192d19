"""Reports written by the real queue runner (SQLite store, loopback DNS, fake MX) when the report
is hard to write (issue 12): a report that cannot be composed becomes a plain one and the entry
is retired, instead of "delivery attempt failed unexpectedly" forever; a queue entry from before
MAIL FROM refused control characters in ENVID/ORCPT gets its bounce and its delay warning, and
the delay warning no longer stops the message from being tried again."""

from __future__ import annotations

import asyncio
import email
import logging
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

import todoku.dsn.compose as dsn_compose
import todoku.queue.runner as queue_runner
from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes
from tests.queue.harness import running_queue
from tests.queue.reports import parse_report
from todoku.dsn.model import Report
from todoku.store.api import RemoteRecipient

ALICE = "alice@example.test"
HOSTILE_ENVID = "env\r\nX-Injected: yes\x1b[2J\x07"
HOSTILE_ORCPT = "rfc822;unknown\r\nX-Orcpt: yes\x1b@remote.test"


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("remote.test", "MX", "10 mx1.remote.test.")
        server.add("mx1.remote.test", "A", "127.0.0.2")
        yield server


async def test_report_that_cannot_be_composed_is_sent_plain_and_the_entry_retired(
    tmp_path: Path,
    dns_server: DnsServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_compose = dsn_compose.compose
    calls: list[bool] = []

    def failing_compose(report: Report, **kwargs: object) -> bytes:
        # Fault injection: composing with the original fails, as the stdlib parser did with
        # MemoryError on a hostile Subject; the plain report (no original) composes.
        calls.append(bool(report.original))
        if report.original:
            raise MemoryError
        return real_compose(report, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dsn_compose, "compose", failing_compose)
    monkeypatch.setattr(queue_runner, "compose", failing_compose, raising=False)  # the old import
    caplog.set_level(logging.INFO)
    with fake_mxes("127.0.0.2") as (mx,):
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(
                ["unknown@remote.test"],
                envid="E-1",
                body=b"Subject: plans\r\nFrom: alice@example.test\r\n\r\nsecret\r\n",
            )
            await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE), timeout=15)
            await asyncio.sleep(0.5)
            reports = q.mailbox(ALICE)
    assert len(reports) == 1, "one report, written once"
    assert calls == [True, False]
    message = email.message_from_bytes(reports[0], policy=policy.default)
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status"]
    assert "could not be included" in parts[0].get_content()
    assert b"secret" not in reports[0] and b"Subject: plans" not in reports[0]
    assert parts[1].get_payload()[1]["Final-Recipient"] == "rfc822; unknown@remote.test"
    assert "failed unexpectedly" not in caplog.text
    assert "could not be composed; writing a plain one" in caplog.text


async def test_control_characters_in_an_old_entry_still_get_their_bounce(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2") as (mx,):
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(
                [RemoteRecipient("unknown@remote.test", HOSTILE_ORCPT, ("FAILURE",))],
                envid=HOSTILE_ENVID,
            )
            await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE), timeout=15)
            [bounce] = q.mailbox(ALICE)
    for bad in (b"\nX-Injected", b"\nX-Orcpt", b"\x1b", b"\x07"):
        assert bad not in bounce
    parsed = parse_report(bounce)
    assert parsed.per_message["Original-Envelope-Id"] == "envX-Injected: yes[2J"
    [recipient] = parsed.recipients
    assert recipient["Original-Recipient"] == "rfc822;unknownX-Orcpt: yes@remote.test"
    assert recipient["Action"] == "failed"


async def test_delay_warning_with_control_characters_and_the_message_is_tried_again(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2", rcpt_reply=lambda a: "451 4.3.0 try again later") as (mx,):
        async with running_queue(
            tmp_path / "data",
            dns_server.address,
            mx.port,
            retry=(0.5,),
            delay_warning=1.0,
            max_lifetime=60.0,
        ) as q:
            queue_id = await q.submit(
                [RemoteRecipient("bob@remote.test", HOSTILE_ORCPT, ("DELAY",))], envid=HOSTILE_ENVID
            )

            def attempts() -> int:
                entry = q.store.get_queue_entry(queue_id)
                assert entry is not None
                return entry.attempts

            await q.wait(lambda: q.mailbox(ALICE), timeout=15)
            after_warning = attempts()
            await q.wait(lambda: attempts() >= after_warning + 2, timeout=15)  # still tried
            [warning] = q.mailbox(ALICE)
    assert b"\nX-Injected" not in warning and b"\x1b" not in warning
    parsed = parse_report(warning)
    assert parsed.recipients[0]["Action"] == "delayed"
    assert parsed.per_message["Original-Envelope-Id"] == "envX-Injected: yes[2J"
