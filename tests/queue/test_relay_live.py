"""Delivery through a smarthost ([[relay]], issue 15) with real sockets: the queue runner and
its SMTP client against a relay built on todoku's own server core, with STARTTLS or implicit TLS
from a trustme CA and AUTH; direct mail goes to a fake MX found through the loopback DNS server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.queue.fakemx import fake_mxes
from tests.queue.fakerelay import RELAY_NAME, RelayCa, fake_relay, make_ca
from tests.queue.harness import running_queue
from tests.queue.reports import parse_report
from todoku.config.relay import RelayConfig
from todoku.proto.smtp.codes import Reply
from todoku.queue.wake import touch_wake_file

ALICE = "alice@example.test"
SECRET = "correct horse battery staple"


@pytest.fixture
def ca(tmp_path: Path) -> RelayCa:
    return make_ca(str(tmp_path))


def password_file(tmp_path: Path, text: str = SECRET) -> Path:
    path = tmp_path / "relay.secret"
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


def relay_config(
    port: int,
    ca: RelayCa,
    secret: Path | None,
    *,
    domains: tuple[str, ...] = ("*",),
    tls: str = "starttls",
    host: str = RELAY_NAME,
    fallback_after: int = 0,
) -> RelayConfig:
    return RelayConfig(
        0,
        domains,
        host,
        port,
        tls,
        "me@provider.test" if secret else None,
        secret,
        Path(ca.ca_file),
        fallback_after,
    )


def relay_zone(dns: DnsServer) -> None:
    dns.add(RELAY_NAME, "A", "127.0.0.1")


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_relay_all_with_login_over_verified_tls(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, tls: str
) -> None:
    relay_zone(dns_server)  # remote.test has no DNS at all: only the relay can deliver
    context = ca.server_context(RELAY_NAME)
    async with fake_relay(
        context, implicit=tls == "implicit", users={"me@provider.test": SECRET}
    ) as relay:
        config = relay_config(relay.port, ca, password_file(tmp_path), tls=tls)
        async with running_queue(tmp_path / "data", dns_server.address, 1, relays=(config,)) as q:
            await q.submit(["bob@remote.test", "carol@elsewhere.test"])
            await q.wait(lambda: not q.store.list_queue())
            assert q.mailbox(ALICE) == []
    [message] = relay.messages
    assert sorted(message.recipients) == ["bob@remote.test", "carol@elsewhere.test"]
    assert message.sender == ALICE and message.user == "me@provider.test"
    assert message.data.endswith(b"\r\n\r\nhello\r\n")
    assert relay.logins == [("me@provider.test", True)]
    # Before TLS only the greeting exchange and STARTTLS: no AUTH, no envelope in clear.
    clear = bytes(relay.clear_text).upper()
    assert b"AUTH" not in clear and b"MAIL FROM" not in clear
    assert b"STARTTLS" in clear if tls == "starttls" else clear == b""


async def test_relay_one_domain_and_subdomains_others_go_direct(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    relay_zone(dns_server)
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    with fake_mxes("127.0.0.2") as (mx,):
        async with fake_relay(
            ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}
        ) as relay:
            config = relay_config(
                relay.port,
                ca,
                password_file(tmp_path),
                domains=("outlook.test", "*.onmicrosoft.test"),
            )
            async with running_queue(
                tmp_path / "data", dns_server.address, mx.port, relays=(config,)
            ) as q:
                await q.submit(
                    [
                        "a@outlook.test",
                        "b@remote.test",
                        "c@corp.onmicrosoft.test",
                        "d@onmicrosoft.test",
                    ]
                )
                await q.wait(lambda: len(relay.messages) == 1 and len(mx.messages) == 1)
                # d@onmicrosoft.test: "*.x" is subdomains only, so it went direct, and DNS
                # says its domain does not exist: bounced.
                await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE))
                [recipient] = parse_report(q.mailbox(ALICE)[0]).recipients
                assert recipient["Final-Recipient"] == "rfc822; d@onmicrosoft.test"
    assert sorted(relay.messages[0].recipients) == ["a@outlook.test", "c@corp.onmicrosoft.test"]
    assert mx.messages[0].recipients == ["b@remote.test"]


async def test_fallback_to_the_relay_after_n_failed_direct_attempts(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    relay_zone(dns_server)
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    asked: list[str] = []

    def blocked(address: str) -> str:
        asked.append(address)
        return "451 4.7.1 Service unavailable; client host blocked using a blocklist"

    with fake_mxes("127.0.0.2", rcpt_reply=blocked) as (mx,):
        async with fake_relay(
            ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}
        ) as relay:
            config = relay_config(relay.port, ca, password_file(tmp_path), fallback_after=2)
            async with running_queue(
                tmp_path / "data", dns_server.address, mx.port, retry=(0.2,), relays=(config,)
            ) as q:
                await q.submit(["bob@remote.test"])
                await q.wait(lambda: not q.store.list_queue())
    assert asked == ["bob@remote.test"] * 2  # two direct attempts, then the relay
    assert mx.messages == []
    [message] = relay.messages
    assert message.recipients == ["bob@remote.test"]


async def test_wrong_password_keeps_the_mail_and_a_fixed_file_drains_the_queue(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa, caplog: pytest.LogCaptureFixture
) -> None:
    relay_zone(dns_server)
    caplog.set_level(logging.INFO)
    wrong = "not the password"
    secret = password_file(tmp_path, wrong)
    async with fake_relay(
        ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}
    ) as relay:
        config = relay_config(relay.port, ca, secret)
        async with running_queue(
            tmp_path / "data", dns_server.address, 1, retry=(3600.0,), relays=(config,)
        ) as q:
            queue_id = await q.submit(["bob@remote.test"])
            await q.wait(
                lambda: (
                    relay.logins
                    and q.store.list_queue()[0].attempts == 1
                    and q.store.list_queue()[0].recipients[0].phase == "auth"
                )
            )
            [entry] = q.store.list_queue()
            [recipient] = entry.recipients
            assert recipient.state == "pending"  # never bounced for our own mistake
            assert "login to the relay relay[0]" in recipient.last_reply
            assert "535 5.7.8" in recipient.last_reply
            assert "configuration problem on this server" in recipient.last_reply
            assert q.mailbox(ALICE) == []
            # The fix: the file is read again for the next connection; flush, no restart.
            secret.write_text(SECRET + "\n")
            q.store.flush_queue(queue_id, None, 0.0)
            touch_wake_file(tmp_path / "data" / "run" / "queue.wake")
            await q.wait(lambda: not q.store.list_queue())
    assert relay.logins == [("me@provider.test", False), ("me@provider.test", True)]
    assert len(relay.messages) == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "login to the relay relay[0]" in logged and "refused the login" in logged
    assert SECRET not in logged and wrong not in logged


async def test_unreachable_relay_is_retried_without_a_bounce(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    relay_zone(dns_server)
    async with fake_relay(ca.server_context(RELAY_NAME)) as closed:
        port = closed.port  # nothing listens there once the block ends
    config = relay_config(port, ca, None)
    async with running_queue(
        tmp_path / "data", dns_server.address, 1, retry=(0.2,), relays=(config,)
    ) as q:
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: q.store.list_queue()[0].attempts >= 2)
        [entry] = q.store.list_queue()
        [recipient] = entry.recipients
        assert recipient.state == "pending" and recipient.phase == "connect"
        assert f"{RELAY_NAME} [127.0.0.1]:{port}" in recipient.last_reply
        assert q.mailbox(ALICE) == []


async def test_relay_refusal_bounces_quoting_the_relay(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    relay_zone(dns_server)
    refusal = Reply(550, "5.7.1", "Sender address rejected: not owned by user me@provider.test")
    async with fake_relay(
        ca.server_context(RELAY_NAME),
        users={"me@provider.test": SECRET},
        rcpt_reply=lambda a: refusal,
    ) as relay:
        config = relay_config(relay.port, ca, password_file(tmp_path))
        async with running_queue(tmp_path / "data", dns_server.address, 1, relays=(config,)) as q:
            await q.submit(["bob@remote.test"])
            await q.wait(lambda: not q.store.list_queue() and q.mailbox(ALICE))
            [bounce] = q.mailbox(ALICE)
    report = parse_report(bounce)
    [recipient] = report.recipients
    assert recipient["Status"] == "5.7.1"
    assert recipient["Remote-MTA"] == f"dns; {RELAY_NAME}"
    assert "550 5.7.1 Sender address rejected: not owned by user" in " ".join(
        recipient["Diagnostic-Code"].split()
    )
    assert SECRET not in bounce.decode("utf-8", "replace")


async def test_certificate_name_mismatch_defers_and_sends_nothing_in_clear(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    relay_zone(dns_server)
    async with fake_relay(
        ca.server_context("imposter.test"), users={"me@provider.test": SECRET}
    ) as relay:
        config = relay_config(relay.port, ca, password_file(tmp_path))
        async with running_queue(
            tmp_path / "data", dns_server.address, 1, retry=(3600.0,), relays=(config,)
        ) as q:
            await q.submit(["bob@remote.test"])
            await q.wait(lambda: q.store.list_queue()[0].recipients[0].phase == "tls")
            [entry] = q.store.list_queue()
            [recipient] = entry.recipients
            assert recipient.state == "pending"
            assert "certificate" in recipient.last_reply.lower()
            assert "nothing was sent without TLS" in recipient.last_reply
            assert q.mailbox(ALICE) == []
    assert relay.messages == [] and relay.logins == []
    clear = bytes(relay.clear_text).upper()
    assert b"AUTH" not in clear and b"MAIL FROM" not in clear


async def test_a_reload_routes_the_next_message_by_the_new_relay_tables(
    tmp_path: Path, dns_server: DnsServer, ca: RelayCa
) -> None:
    """SIGHUP swaps [[relay]] (issue 16): the next message goes to the relay now configured,
    under the same key, with the new password; nothing is sent to the old one any more."""
    relay_zone(dns_server)
    context = ca.server_context(RELAY_NAME)
    old_secret = password_file(tmp_path)
    (tmp_path / "new").mkdir()
    new_secret = password_file(tmp_path / "new", "another secret here")
    relays = (relay_config(0, ca, old_secret),)  # the ports are known once the relays run
    async with (
        fake_relay(context, users={"me@provider.test": SECRET}) as old,
        fake_relay(context, users={"me@provider.test": "another secret here"}) as new,
        running_queue(tmp_path / "data", dns_server.address, 1, relays=relays) as q,
    ):
        q.runner.set_relays((relay_config(old.port, ca, old_secret),))
        await q.submit(["bob@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
        q.runner.set_relays((relay_config(new.port, ca, new_secret),))
        await q.submit(["carol@remote.test"])
        await q.wait(lambda: not q.store.list_queue())
    assert [m.recipients for m in old.messages] == [["bob@remote.test"]]
    assert [m.recipients for m in new.messages] == [["carol@remote.test"]]
    assert new.logins == [("me@provider.test", True)]
