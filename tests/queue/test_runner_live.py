"""The outbound queue with real parts: SQLite store, a DNS server on loopback, the SMTP client,
and scripted fake MX servers on 127.0.0.2, 127.0.0.3, ... Reports are parsed with ``email``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes, server_tls_context
from tests.queue.harness import running_queue
from tests.queue.reports import parse_report
from todoku.net.smtp_client import Timeouts
from todoku.queue.schedule import FakeClock
from todoku.store.api import RecipientResult, RemoteRecipient

ALICE = "alice@example.test"


def zone(dns: DnsServer, domain: str, *hosts: str) -> None:
    for index, ip in enumerate(hosts):
        name = f"mx{index + 1}.{domain}"
        dns.add(domain, "MX", f"{10 * (index + 1)} {name}.")
        dns.add(name, "A", ip)


async def test_delivers_over_tls_and_bounces_user_unknown_with_explanation(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2", tls_context=server_tls_context(tmp_path)) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(
                [
                    "bob@remote.test",
                    RemoteRecipient("unknown.user@remote.test", "rfc822;Unknown.User@remote.test"),
                ],
                envid="ENV-42",
            )
            await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE))
            [bounce] = q.mailbox(ALICE)
    [received] = mx.messages
    assert received.recipients == ["bob@remote.test"]
    assert received.tls
    assert received.data.endswith(b"\r\n\r\nhello\r\n")
    report = parse_report(bounce)
    assert report.subject == "Undelivered Mail Returned to Sender"
    assert str(report.message["From"]).endswith("<MAILER-DAEMON@mx.example.test>")
    assert report.per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert report.per_message["Original-Envelope-Id"] == "ENV-42"
    assert report.per_message["Arrival-Date"]
    [recipient] = report.recipients
    assert recipient["Final-Recipient"] == "rfc822; unknown.user@remote.test"
    assert recipient["Original-Recipient"] == "rfc822;Unknown.User@remote.test"
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "5.1.1"
    assert recipient["Remote-MTA"] == "dns; mx1.remote.test"
    assert "550 5.1.1 <unknown.user@remote.test>: Recipient address rejected" in " ".join(
        recipient["Diagnostic-Code"].split()
    )
    assert "part before the @" in report.human
    assert "unknown.user" in report.human
    assert report.returned.get_content_type() == "message/rfc822"
    assert b"hello" in report.returned.as_bytes()


async def test_next_mx_is_tried_when_the_first_refuses(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2", "127.0.0.3") as (good, dead):
        dead.stop()  # nothing listens on 127.0.0.3: connection refused
        zone(dns_server, "remote.test", "127.0.0.3", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, good.port) as q:
            await q.submit(["bob@remote.test"])
            await q.wait(lambda: not q.store.list_queue())
            assert q.mailbox(ALICE) == []
    assert len(good.messages) == 1


async def test_recipients_share_a_transaction_and_messages_share_a_connection(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    # A slow greeting: the later messages are queued while the first connection opens; a short
    # idle wait after each message lets a burst share the connection.
    with fake_mxes("127.0.0.2", greeting_delay=1.0) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, max_connections=1
        ) as q:
            for n in range(3):
                await q.submit([f"a{n}@remote.test", f"b{n}@remote.test"])
            await q.wait(lambda: not q.store.list_queue())
    assert sorted(len(m.recipients) for m in mx.messages) == [2, 2, 2]
    assert mx.connections == 1
    assert mx.max_concurrent == 1


async def test_rate_limited_remote_slows_down_and_nothing_bounces(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    # Virtual time: the pauses (1, 2, 4 s) and retries pass when the test moves the clock.
    refusals = {"left": 3}
    clock = FakeClock(time.time())

    def rcpt(address: str) -> str:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            return "451 4.7.1 <" + address + ">: rate limit exceeded, slow down"
        return "250 2.1.5 Ok"

    with fake_mxes("127.0.0.2", rcpt_reply=rcpt) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, max_connections=4, clock=clock
        ) as q:
            await q.submit(["user0@remote.test"], received_at=clock.now())
            await q.quiet(clock.now())
            destination = q.runner.destination("remote.test")
            assert destination is not None and destination.backoff > 0
            assert destination.limit == 1
            for n in range(1, 4):  # while paused: deferred without dialling
                await q.submit([f"user{n}@remote.test"], received_at=clock.now())
            await q.quiet(clock.now())
            assert refusals["left"] == 2 and len(q.store.list_queue()) == 4
            for _ in range(8):
                if not q.store.list_queue():
                    break
                clock.advance(5.0)
                q.runner.poke()
                await q.quiet(clock.now())
            assert not q.store.list_queue()
            assert q.mailbox(ALICE) == []  # a temporary limit never bounces
            assert destination.backoff == 0 and destination.limit > 1  # lifted by itself
    assert len(mx.messages) == 4
    assert refusals["left"] == 0


async def test_421_greeting_and_closed_connection_are_deferred(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with (
        fake_mxes("127.0.0.2", greeting="421 4.3.2 Service not available, closing") as (busy,),
        fake_mxes("127.0.0.3", mode="close") as (closer,),
    ):
        zone(dns_server, "busy.test", "127.0.0.2")
        dns_server.add("closer.test", "MX", "10 mx.closer.test.")
        dns_server.add("mx.closer.test", "A", "127.0.0.3")
        async with running_queue(
            tmp_path / "data", dns_server.address, busy.port, retry=(30.0,)
        ) as q:
            if closer.port != busy.port:
                closer.stop()
                closer.port = busy.port
                closer.start()
            await q.submit(["bob@busy.test", "carol@closer.test"])

            def attempted() -> bool:
                [entry] = q.store.list_queue()
                return all(r.phase for r in entry.recipients)

            await q.wait(attempted)
            [entry] = q.store.list_queue()
            by_address = {r.address: r for r in entry.recipients}
            assert by_address["bob@busy.test"].state == "pending"
            assert by_address["bob@busy.test"].code == 421
            assert by_address["carol@closer.test"].state == "pending"
            assert "closed" in by_address["carol@closer.test"].last_reply
            assert entry.attempts == 1 and entry.next_attempt > entry.received_at + 20
            assert q.mailbox(ALICE) == []


async def test_unreachable_domain_warns_then_expires_with_4_4_7(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2", mode="timeout") as (mx,):
        zone(dns_server, "slow.test", "127.0.0.2")
        timeouts = Timeouts(connect=1, greeting=0.5, command=1, data_block=1, end_of_data=1)
        async with running_queue(
            tmp_path / "data",
            dns_server.address,
            mx.port,
            retry=(1.0,),
            delay_warning=2.0,
            max_lifetime=6.0,
            timeouts=timeouts,
        ) as q:
            await q.submit(["bob@slow.test"], body=b"Subject: waiting\r\n\r\nbody\r\n")
            await q.wait(lambda: len(q.mailbox(ALICE)) >= 1, timeout=15)
            assert q.store.list_queue(), "still queued after the warning"
            await q.wait(
                lambda: not q.store.list_queue() and len(q.mailbox(ALICE)) == 2, timeout=20
            )
            warning, bounce = q.mailbox(ALICE)
    delay = parse_report(warning)
    assert delay.subject.startswith("Warning: could not send message for past ")
    assert delay.subject.endswith("seconds")
    assert "will keep trying until the message is 6 seconds old" in delay.human
    [recipient] = delay.recipients
    assert recipient["Action"] == "delayed"
    assert recipient["Status"].startswith("4.")
    assert recipient["Will-Retry-Until"]
    assert delay.returned.get_content_type() == "text/rfc822-headers"
    final = parse_report(bounce)
    [recipient] = final.recipients
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "4.4.7"
    assert "Subject: waiting" in final.returned.as_string()


async def test_null_mx_and_unknown_domain_bounce_at_once_servfail_waits(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    dns_server.servfail("broken.test")
    async with running_queue(tmp_path / "data", dns_server.address, 9) as q:
        await q.submit(["a@nomail.test", "b@gmial.com", "c@broken.test"])

        def settled() -> bool:
            [entry] = q.store.list_queue() or [None]
            return (
                entry is not None
                and all(r.phase for r in entry.recipients)
                and bool(q.mailbox(ALICE))
            )

        await q.wait(settled)
        [entry] = q.store.list_queue()
        states = {r.address: r.state for r in entry.recipients}
        assert states == {
            "a@nomail.test": "failed",
            "b@gmial.com": "failed",
            "c@broken.test": "pending",
        }
        [bounce] = q.mailbox(ALICE)
    report = parse_report(bounce)
    status = {r["Final-Recipient"]: r["Status"] for r in report.recipients}
    assert status == {"rfc822; a@nomail.test": "5.1.10", "rfc822; b@gmial.com": "5.1.2"}
    assert "gmail.com" in report.human  # the near domain that does exist
    assert "does not accept mail" in report.human


async def test_mx_pointing_back_at_us_is_reported_as_local_configuration_error(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.add("misconfigured.test", "MX", "10 mx.example.test.")
    dns_server.add("mx.example.test", "A", "127.0.0.1")
    dns_server.add("alias-mx.test", "MX", "10 other.alias-mx.test.")
    dns_server.add("other.alias-mx.test", "A", "127.0.0.1")
    async with running_queue(tmp_path / "data", dns_server.address, 9) as q:
        await q.submit(["a@misconfigured.test", "b@alias-mx.test"])
        await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE))
        [bounce] = q.mailbox(ALICE)
    report = parse_report(bounce)
    assert sorted(r["Status"] for r in report.recipients) == ["5.4.6", "5.4.6"]
    assert "Local configuration error" in report.human
    assert "loops back to myself" in report.human


async def test_looping_message_is_bounced_by_hop_count(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    zone(dns_server, "remote.test", "127.0.0.2")
    looped = b"".join(
        b"Received: from hop%d by relay; Sat, 1 Jan 2026 00:00:00 +0000\r\n" % n for n in range(51)
    )
    async with running_queue(tmp_path / "data", dns_server.address, 9) as q:
        await q.submit(["bob@remote.test"], body=looped + b"Subject: loop\r\n\r\nx\r\n")
        await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE))
        [bounce] = q.mailbox(ALICE)
    [recipient] = parse_report(bounce).recipients
    assert recipient["Status"] == "5.4.6"


async def test_notify_ret_and_null_sender(tmp_path: Path, dns_server: DnsServer) -> None:
    # This MX does not announce DSN, so a NOTIFY=SUCCESS recipient gets our "relayed" report
    # (RFC 3461 §5.2.2.3); a DSN-capable MX gets the NOTIFY passed on instead (next test).
    no_dsn = ("PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8")
    with fake_mxes("127.0.0.2", extensions=no_dsn) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit([RemoteRecipient("unknown1@remote.test", None, ("NEVER",))])
            await q.submit(["unknown2@remote.test"], sender="")  # a bounce is never bounced
            await q.submit([RemoteRecipient("ok@remote.test", None, ("SUCCESS",))])
            await q.submit(
                [RemoteRecipient("unknown3@remote.test", None, ("FAILURE",))],
                ret="HDRS",
                body=b"Subject: hdrs\r\n\r\nsecret body\r\n",
            )
            await q.wait(lambda: not q.store.list_queue() and len(q.mailbox(ALICE)) >= 2)
            await asyncio.sleep(0.3)
            reports = [parse_report(m) for m in q.mailbox(ALICE)]
    assert sorted(r.recipients[0]["Action"] for r in reports) == ["failed", "relayed"]
    failed = next(r for r in reports if r.recipients[0]["Action"] == "failed")
    assert failed.recipients[0]["Final-Recipient"] == "rfc822; unknown3@remote.test"
    assert failed.returned.get_content_type() == "text/rfc822-headers"
    assert "secret body" not in failed.message.as_string()
    assert all("NOTIFY" not in p for m in mx.messages for p in m.rcpt_params)


async def test_notify_is_passed_on_to_a_dsn_capable_next_hop(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2") as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(
                [
                    RemoteRecipient(
                        "ok@remote.test", "rfc822;OK@remote.test", ("SUCCESS", "FAILURE")
                    )
                ],
                envid="ENV 1",
                ret="HDRS",
            )
            await q.wait(lambda: not q.store.list_queue())
            await asyncio.sleep(0.3)
            assert q.mailbox(ALICE) == []  # the next hop reports success now, not us
    [received] = mx.messages
    assert received.rcpt_params == ["NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;OK@remote.test"]
    assert "RET=HDRS" in received.mail_params and "ENVID=ENV+201" in received.mail_params


async def test_restart_resumes_and_never_resends_a_delivered_recipient(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    with fake_mxes("127.0.0.2") as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.runner.stop()  # a server that went down right after accepting the message
            queue_id = await q.submit(["done@remote.test", "todo@remote.test"])
            # As if the crash came right after the remote's 250 for one recipient was recorded.
            q.store.record_results(
                queue_id,
                [
                    RecipientResult(
                        "done@remote.test",
                        "delivered",
                        "end-of-data",
                        250,
                        "2.0.0",
                        "Ok",
                        "mx1 [127.0.0.2]",
                        "delivered",
                        "2.0.0",
                        "remote.test",
                    )
                ],
                0.0,
            )
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.wait(lambda: not q.store.list_queue())
    assert [m.recipients for m in mx.messages] == [["todo@remote.test"]]


async def test_per_domain_connection_limit(tmp_path: Path, dns_server: DnsServer) -> None:
    import time as _time

    def slow_data(message: object) -> str:
        _time.sleep(0.3)  # keep each transaction open so parallel connections overlap
        return "250 2.0.0 Ok"

    with fake_mxes("127.0.0.2", data_reply=slow_data) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, max_connections=2
        ) as q:
            for n in range(6):
                await q.submit([f"user{n}@remote.test"])
            await q.wait(lambda: not q.store.list_queue(), timeout=30)
    assert len(mx.messages) == 6
    assert mx.max_concurrent <= 2


async def test_big_message_with_dot_lines_arrives_intact(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    body = b"Subject: big\r\n\r\n" + b"".join(
        (b"." if n % 7 == 0 else b"") + b"line %d of a long message with some text\r\n" % n
        for n in range(80_000)
    )
    with fake_mxes("127.0.0.2") as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        # A generous end-of-data timeout: the fake MX shares this process (and its GIL), and a
        # timeout after the remote took the message would legitimately cause a second copy.
        slow_ok = Timeouts(connect=5, greeting=10, command=10, data_block=30, end_of_data=60)
        async with running_queue(
            tmp_path / "data", dns_server.address, mx.port, timeouts=slow_ok
        ) as q:
            await q.submit(["bob@remote.test"], body=body)
            await q.wait(lambda: not q.store.list_queue(), timeout=30)
    [received] = mx.messages
    assert len(body) > 3_000_000
    assert received.data == body
    assert f"SIZE={len(body)}" in received.mail_params


async def test_failed_tls_handshake_is_retried_once_without_tls(
    tmp_path: Path, dns_server: DnsServer, caplog: object
) -> None:
    import ssl as _ssl

    broken = server_tls_context(tmp_path)
    # Our client insists on TLS 1.2 or later; a server stuck at 1.1 cannot complete a handshake.
    broken.minimum_version = broken.maximum_version = _ssl.TLSVersion.TLSv1_1
    with fake_mxes("127.0.0.2", tls_context=broken) as (mx,):
        zone(dns_server, "remote.test", "127.0.0.2")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(["bob@remote.test"])
            await q.wait(lambda: not q.store.list_queue())
    [received] = mx.messages
    assert not received.tls
    assert mx.connections == 2
    assert "TLS handshake failed" in caplog.text  # type: ignore[attr-defined]


async def test_ipv6_mx(tmp_path: Path, dns_server: DnsServer) -> None:
    import socket as _socket

    import pytest

    try:
        probe = _socket.socket(_socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with fake_mxes("::1") as (mx,):
        dns_server.add("six.test", "MX", "10 mx.six.test.")
        dns_server.add("mx.six.test", "AAAA", "::1")
        async with running_queue(tmp_path / "data", dns_server.address, mx.port) as q:
            await q.submit(["bob@six.test"])
            await q.wait(lambda: not q.store.list_queue())
    assert [m.recipients for m in mx.messages] == [["bob@six.test"]]
