"""Every failure todoku produces itself, provoked for real and read back as the sender would
(issue 13 item 5): the loopback DNS server, fake MX servers on 127.0.0.N, the real SMTP client
and the real runner, in virtual time (FakeClock; a test moves the clock, nothing sleeps out a
retry interval). Each report is collected from the sender's mailbox, run through the analyzer
in English and Japanese, and its reason, action, permanent/hard and recipient are checked,
together with the words of the explanation: a returned message is never "still being retried",
a delay warning never asks the sender to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.queue.fakemx import Received, fake_mxes
from tests.queue.reports import parse_report
from todoku.bounce.analyze import Diagnosis, analyze_bytes
from todoku.dns.dnspython import DnspythonResolver
from todoku.net.smtp_client import Timeouts
from todoku.queue.runner import QueueRunner, RunnerSettings
from todoku.queue.schedule import FakeClock, Schedule
from todoku.queue.transport import SmtpTransport
from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend

HOUR = 3600.0
HOSTNAME = "mx.example.test"
ALICE = "alice@example.test"
SCHEDULE = Schedule(retry=(600.0, HOUR), delay_warning=2 * HOUR, max_lifetime=5 * HOUR)
# A blocked port 25 is a connect that never completes: the connect timeout is the only real
# wait in this module, kept short.
TIMEOUTS = Timeouts(connect=0.3, greeting=2, command=2, data_block=2, end_of_data=2)

# What the explanations say about retrying, by language: a returned message says the second,
# never the first; a delay warning the first, never the second nor "try again".
STILL_RETRIED = {
    "en": ("still retrying", "keeps trying", "will keep trying"),
    "ja": ("再送を自動で続けて", "再送を続け"),
}
RETURNED = {"en": ("returned",), "ja": ("返送され",)}
ASKS_TO_RESEND = {
    "en": ("try again later", "send it again yourself", "send again later"),
    "ja": ("後でもう一度", "ご自身で送り直して", "時間をおいて"),
}


async def example_mailboxes(address: str) -> tuple[str, ...] | None:
    """Reports to @example.test go to that mailbox; anything else is queued."""
    return (address,) if address.endswith("@example.test") else None


class World:
    """The runner with real sockets, a FakeClock and a SQLite store; reports land in the
    sender's local mailbox."""

    def __init__(self, tmp_path: Path, dns: DnsServer, port: int, lang: str = "en") -> None:
        self.clock = FakeClock(1_000_000.0)
        self.store = SqliteStore(tmp_path / f"data-{lang}")
        self.backend = SqliteBackend(self.store, ("example.test",))
        self.runner = QueueRunner(
            self.backend,
            DnspythonResolver((dns.address,), lifetime=2.0),
            SmtpTransport(HOSTNAME, port, None, TIMEOUTS),
            RunnerSettings(HOSTNAME, lang, SCHEDULE),
            is_self=lambda host, ip: host == HOSTNAME,
            local_mailboxes=example_mailboxes,
            clock=self.clock,
        )

    async def submit(self, *recipients: str, body: bytes = b"") -> str:
        writer = self.store.new_blob()
        writer.write(body or b"From: alice@example.test\r\nSubject: plans\r\n\r\nsee you\r\n")
        blob = await asyncio.to_thread(writer.finish)
        queue_id = await self.store.commit(
            IncomingMessage(
                blob=blob,
                sender=ALICE,
                received_at=self.clock.now(),
                subject="plans",
                remote=tuple(RemoteRecipient(r) for r in recipients),
            )
        )
        await self.settle()
        return queue_id

    async def settle(self) -> None:
        """Until the runner has been idle for a while (real sockets answer in milliseconds)."""
        quiet = 0
        for _ in range(3000):
            await asyncio.sleep(0.01)
            quiet = quiet + 1 if self.runner.idle.is_set() else 0
            if quiet >= 8:
                return
        raise AssertionError("the runner did not settle")

    async def advance(self, seconds: float, step: float = HOUR / 2) -> None:
        """Move the clock in steps (every retry due on the way happens)."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            self.runner.poke()
            await self.settle()

    def reports(self) -> list[bytes]:
        out = []
        for message in self.store.list_messages(ALICE):
            with self.store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, dns: DnsServer, port: int, lang: str = "en"
) -> AsyncIterator[World]:
    w = World(tmp_path, dns, port, lang)
    loop = asyncio.get_running_loop()

    def queued(items: list[tuple[str, float]]) -> None:
        loop.call_soon_threadsafe(w.runner.enqueue, items)

    w.store.on_queued = queued
    task = asyncio.create_task(w.runner.run())
    try:
        yield w
    finally:
        await w.runner.stop()
        await asyncio.wait([task], timeout=10)
        w.store.close()


def mx_for(dns: DnsServer, domain: str, ip: str) -> None:
    dns.add(domain, "MX", f"10 mx1.{domain}.")
    dns.add(f"mx1.{domain}", "A", ip)


def check(
    data: bytes, *, recipient: str, reason: str, action: str, hard: bool, remote: str | None = None
) -> dict[str, Diagnosis]:
    """The analyzer's reading of one of our reports, in both languages, and the report's own
    text: the facts as expected, and the words agreeing with the action."""
    human = " ".join(parse_report(data).human.split())
    out = {}
    for lang in ("en", "ja"):
        [d] = analyze_bytes(data, lang=lang, explain=True)
        facts = (d.recipient, d.reason, d.action, d.permanent, d.hard)
        assert facts == (recipient, reason, action, action == "failed", hard), (lang, d)
        words = f"{d.cause} {d.remedy}"
        if action == "failed":
            assert not any(w in words for w in STILL_RETRIED[lang]), (lang, words)
            assert any(w in words for w in RETURNED[lang]), (lang, words)
        else:
            assert any(w in words for w in STILL_RETRIED[lang]), (lang, words)
            assert not any(w in words for w in RETURNED[lang]), (lang, words)
            assert not any(w.lower() in words.lower() for w in ASKS_TO_RESEND[lang]), words
        # Never this server named as the remote one, nor our own words as "the server said".
        assert HOSTNAME not in d.remote_mta, (lang, d)
        if remote is not None:
            assert d.remote_mta == remote, (lang, d)
        assert "could not" not in d.diagnostic and "expired" not in d.diagnostic, (lang, d)
        out[lang] = d
    if action == "failed":
        assert not any(w in human for w in STILL_RETRIED["en"]), human
    else:
        assert not any(w.lower() in human.lower() for w in ASKS_TO_RESEND["en"]), human
    return out


def report_human(data: bytes) -> str:
    return " ".join(parse_report(data).human.split())


# ---------------------------------------------------------------- remote refusals (5xx)


@pytest.mark.parametrize(
    ("where", "reply", "reason", "hard"),
    [
        (
            "rcpt",
            "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
            "userunknown",
            True,
        ),
        ("data", "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig", True),
        ("rcpt", "554 5.7.1 <{rcpt}>: Relay access denied", "norelaying", True),
        (
            "data",
            "550 5.7.1 Message rejected: content violates our policy",
            "policyviolation",
            True,
        ),
    ],
)
async def test_remote_refusals_are_returned_at_once(
    tmp_path: Path, dns: DnsServer, where: str, reply: str, reason: str, hard: bool
) -> None:
    def rcpt(address: str) -> str:
        return reply.format(rcpt=address) if where == "rcpt" else "250 2.1.5 Ok"

    def data(message: Received) -> str:
        return reply if where == "data" else "250 2.0.0 Ok: queued"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt, data_reply=data) as (mx,):
        mx_for(dns, "remote.test", "127.0.0.2")
        async with world(tmp_path, dns, mx.port) as w:
            await w.submit("bob@remote.test")
            [bounce] = w.reports()
            assert w.store.list_queue() == []
    diagnoses = check(
        bounce,
        recipient="bob@remote.test",
        reason=reason,
        action="failed",
        hard=hard,
        remote="mx1.remote.test",
    )
    assert diagnoses["en"].reply_code == int(reply[:3])
    assert diagnoses["en"].diagnostic.startswith(reply[:9])


# ---------------------------------------------------------------- decided here: DNS, loop


async def test_unknown_domain_and_null_mx_are_returned_without_a_remote(
    tmp_path: Path, dns: DnsServer
) -> None:
    dns.add("nomail.test", "MX", "0 .")
    async with world(tmp_path, dns, 9) as w:
        await w.submit("carol@nomail.test")
        await w.submit("dave@gmial.com")
        null_mx, nxdomain = w.reports()
    check(
        null_mx,
        recipient="carol@nomail.test",
        reason="notaccept",
        action="failed",
        hard=True,
        remote="",
    )
    d = check(
        nxdomain,
        recipient="dave@gmial.com",
        reason="hostunknown",
        action="failed",
        hard=True,
        remote="",
    )
    assert d["en"].diagnostic == "" and d["en"].status == "5.1.2"
    assert "gmail.com" in d["en"].remedy


async def test_mx_loop_is_a_permanent_configuration_error(tmp_path: Path, dns: DnsServer) -> None:
    dns.add("loop.test", "MX", f"10 {HOSTNAME}.")
    dns.add(HOSTNAME, "A", "127.0.0.1")
    async with world(tmp_path, dns, 9) as w:
        await w.submit("erin@loop.test")
        [bounce] = w.reports()
    d = check(
        bounce,
        recipient="erin@loop.test",
        reason="networkerror",
        action="failed",
        hard=False,
        remote="",
    )
    assert d["en"].status == "5.4.6" and d["en"].diagnostic == ""
    for text in (d["en"].cause + d["en"].remedy, report_human(bounce)):
        assert "temporary" not in text.lower() and "send again later" not in text, text
        assert "loop" in text and "administrator must fix it" in text


async def test_hop_count_loop_is_returned(tmp_path: Path, dns: DnsServer) -> None:
    body = b"".join(b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n" for _ in range(60))
    async with world(tmp_path, dns, 9) as w:
        await w.submit("fred@remote.test", body=body + b"Subject: round\r\n\r\nx\r\n")
        [bounce] = w.reports()
    d = check(
        bounce,
        recipient="fred@remote.test",
        reason="networkerror",
        action="failed",
        hard=False,
        remote="",
    )
    assert d["en"].status == "5.4.6" and d["en"].diagnostic == ""


# ---------------------------------------------------------------- retried, then returned


@contextlib.contextmanager
def blocked_port(ip: str, port: int) -> Iterator[None]:
    """A host whose port never completes a connection (a firewall dropping SYNs, as for a
    blocked port 25): a listener that never accepts, its one-entry backlog filled."""
    listener = socket.socket()
    listener.bind((ip, port))
    listener.listen(0)
    filler = socket.create_connection((ip, port), timeout=2)
    try:
        yield
    finally:
        filler.close()
        listener.close()


@pytest.mark.parametrize("failure", ["refused", "timeout", "451"])
async def test_temporary_failures_warn_then_return_at_expiry(
    tmp_path: Path, dns: DnsServer, failure: str
) -> None:
    def rcpt(address: str) -> str:
        return "451 4.3.0 <" + address + ">: Temporary lookup failure"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt) as (mx,):
        ip = {"refused": "127.0.0.3", "timeout": "127.0.0.4", "451": "127.0.0.2"}[failure]
        mx_for(dns, "remote.test", ip)
        blocked = blocked_port(ip, mx.port) if failure == "timeout" else contextlib.nullcontext()
        with blocked:
            async with world(tmp_path, dns, mx.port) as w:
                start = w.clock.now()
                await w.submit("bob@remote.test")
                await w.advance(2 * HOUR + 60)
                [warning] = w.reports()
                assert w.store.list_queue(), "retried, not returned, before max_lifetime"
                await w.advance(start + 5 * HOUR + 60 - w.clock.now())
                assert w.store.list_queue() == []
                _, final = w.reports()
    delayed_reason = "networkerror" if failure != "451" else "systemerror"
    d = check(
        warning,
        recipient="bob@remote.test",
        reason=delayed_reason,
        action="delayed",
        hard=False,
        remote="mx1.remote.test",
    )
    # Connection refused is a network problem, never a blocklist.
    assert "blocklist" not in d["en"].cause and "ブロックリスト" not in d["ja"].cause
    assert "blocklist" not in report_human(warning)
    d = check(
        final,
        recipient="bob@remote.test",
        reason="expired",
        action="failed",
        hard=False,
        remote="mx1.remote.test",
    )
    assert d["en"].status == "4.4.7"
    if failure == "451":
        assert d["en"].diagnostic.startswith("451 4.3.0")
    else:
        assert d["en"].diagnostic == ""
    human = report_human(final)
    assert "blocklist" not in human
    # What happened says how the last attempt failed (the reply has its own line).
    last = {
        "refused": "The last attempt failed: connect to mx1.remote.test",
        "timeout": "The last attempt failed: connect to mx1.remote.test",
        "451": "mx1.remote.test [127.0.0.2] said: 451 4.3.0",
    }[failure]
    assert last in human, human


async def test_greylisting_is_retried_and_delivered_without_a_report(
    tmp_path: Path, dns: DnsServer
) -> None:
    seen: set[str] = set()

    def rcpt(address: str) -> str:
        if address in seen:
            return "250 2.1.5 Ok"
        seen.add(address)
        return "451 4.7.1 <" + address + ">: Recipient address rejected: Greylisted, try again"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt) as (mx,):
        mx_for(dns, "remote.test", "127.0.0.2")
        async with world(tmp_path, dns, mx.port) as w:
            await w.submit("bob@remote.test")
            [entry] = w.store.list_queue()
            assert entry.recipients[0].state == "pending"
            await w.advance(SCHEDULE.retry[0])
            assert w.store.list_queue() == []
            assert w.reports() == []
    assert [m.recipients for m in mx.messages] == [["bob@remote.test"]]


async def test_rate_limit_is_retried_never_returned_before_expiry(
    tmp_path: Path, dns: DnsServer
) -> None:
    with fake_mxes(
        "127.0.0.2", greeting="421 4.7.0 {host} Too many connections from your IP, slow down"
    ) as (mx,):
        mx_for(dns, "remote.test", "127.0.0.2")
        async with world(tmp_path, dns, mx.port) as w:
            start = w.clock.now()
            await w.submit("bob@remote.test")
            destination = w.runner.destination("remote.test")
            assert destination is not None and destination.backoff > 0  # throttled
            await w.advance(2 * HOUR + 60)
            [warning] = w.reports()
            assert w.store.list_queue()
            await w.advance(start + 5 * HOUR + 60 - w.clock.now())
            _, final = w.reports()
    check(
        warning,
        recipient="bob@remote.test",
        reason="toomanyconn",
        action="delayed",
        hard=False,
        remote="mx1.remote.test",
    )
    check(
        final,
        recipient="bob@remote.test",
        reason="expired",
        action="failed",
        hard=False,
        remote="mx1.remote.test",
    )


async def test_too_many_recipients_sends_the_rest_later_without_throttling(
    tmp_path: Path, dns: DnsServer
) -> None:
    """RFC 5321 §4.5.3.1.10: 452 4.5.3 at RCPT limits one transaction, not the destination;
    the recipients it refused go in the next transaction."""
    refused: list[str] = []

    def rcpt(address: str) -> str:
        if address == "b@remote.test" and not refused:
            refused.append(address)  # one recipient per transaction, this once
            return "452 4.5.3 Too many recipients"
        return "250 2.1.5 Ok"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt) as (mx,):
        mx_for(dns, "remote.test", "127.0.0.2")
        async with world(tmp_path, dns, mx.port) as w:
            await w.submit("a@remote.test", "b@remote.test")
            destination = w.runner.destination("remote.test")
            assert destination is not None
            assert destination.backoff == 0 and destination.paused_until == 0  # not throttled
            # The rest went at once, in a transaction of their own: no retry interval, no
            # report, and the clock never moved.
            assert w.store.list_queue() == []
            assert w.reports() == []
    assert [m.recipients for m in mx.messages] == [["a@remote.test"], ["b@remote.test"]]


# ---------------------------------------------------------------- the administrator


@pytest.mark.parametrize("lang", ["en", "ja"])
async def test_administrator_bounce_says_so(tmp_path: Path, dns: DnsServer, lang: str) -> None:
    from todoku.queue.admin import administrator_results

    def rcpt(address: str) -> str:
        return "451 4.3.0 Try again later"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt) as (mx,):
        mx_for(dns, "remote.test", "127.0.0.2")
        async with world(tmp_path, dns, mx.port, lang=lang) as w:
            queue_id = await w.submit("bob@remote.test")
            entry = w.store.get_queue_entry(queue_id)
            assert entry is not None
            w.store.record_results(queue_id, administrator_results(entry, HOSTNAME), w.clock.now())
            w.store.flush_queue(queue_id, None, w.clock.now())
            await w.runner.rescan()
            await w.settle()
            [bounce] = w.reports()
    d = check(
        bounce,
        recipient="bob@remote.test",
        reason="cancelled",
        action="failed",
        hard=False,
        remote="",
    )
    assert d["en"].diagnostic == ""
    assert "removed by the administrator" in d["en"].cause
    assert "管理者" in d["ja"].cause
    human = report_human(bounce)
    assert ("removed by the administrator" if lang == "en" else "管理者") in human
    assert "could not be determined" not in human and "特定できません" not in human
