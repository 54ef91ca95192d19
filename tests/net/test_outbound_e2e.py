"""Outbound delivery through the real ``todoku serve`` process: submission → queue → DNS MX on
the loopback DNS server → fake MX on 127.0.0.2 → delivered or bounced; the queue commands reach
the running server; a restart in the middle loses nothing and sends nothing twice."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.dnsserver import DnsServer
from tests.queue.fakemx import FakeMx, fake_mxes
from tests.queue.reports import parse_report
from todoku.store.sqlite import SqliteStore

ALICE = "alice@example.test"


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("remote.test", "MX", "10 mx1.remote.test.")
        server.add("mx1.remote.test", "A", "127.0.0.2")
        yield server


@pytest.fixture
def mx() -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2") as (fake,):
        yield fake


def delivery_config(dns: DnsServer, port: int, **extra: str) -> str:
    settings = {
        "port": str(port),
        "retry": '["1s"]',
        "delay_warning": '"0"',
        "max_lifetime": '"1h"',
    }
    settings |= extra
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f'[dns]\nnameservers = ["{dns.address}"]\n\n[delivery]\n{lines}\n'


def start(make_server: Callable[..., TodokuServer], extra: str) -> TodokuServer:
    server = make_server(extra=extra, start=False)
    server.add_user(ALICE)
    server.start()
    return server


def submit(
    server: TodokuServer, recipients: list[str], body: bytes = b"Subject: out\r\n\r\nhi\r\n"
) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, recipients, body) == {}


def mailbox(server: TodokuServer, address: str = ALICE) -> list[bytes]:
    store = SqliteStore(server.data_dir)
    try:
        out = []
        for message in store.list_messages(address):
            with store.open_blob(message.blob_id) as handle:
                out.append(handle.read())
        return out
    finally:
        store.close()


def queue_json(server: TodokuServer) -> list[dict[str, object]]:
    lines = server.cli("queue", "list", "--json").stdout.splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_submitted_mail_is_delivered_and_550_bounced(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    server = start(make_server, delivery_config(dns_server, mx.port))
    submit(server, ["bob@remote.test", "unknown@remote.test"])
    mx.wait_for(1)
    wait_until(lambda: mailbox(server), what="the bounce")
    wait_until(lambda: not queue_json(server), what="an empty queue")
    assert mx.messages[0].recipients == ["bob@remote.test"]
    assert mx.messages[0].data.startswith(b"DKIM-Signature:")  # signed on the way out (mailauth)
    report = parse_report(mailbox(server)[0])
    [recipient] = report.recipients
    assert recipient["Status"] == "5.1.1"
    assert "unknown" in report.human
    assert "to=<bob@remote.test>" in server.log() and "=> delivered" in server.log()


def test_restart_in_the_middle_resumes_without_loss_or_duplicates(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    dns_server.servfail("later.test")
    server = start(make_server, delivery_config(dns_server, mx.port))
    submit(server, ["bob@remote.test", "carol@later.test"])
    mx.wait_for(1)
    wait_until(lambda: any(e["attempts"] for e in queue_json(server)), what="a first attempt")
    server.kill()  # SIGKILL: no chance to tidy up
    [entry] = queue_json(server)
    states = {r["address"]: r["state"] for r in entry["recipients"]}  # type: ignore[union-attr]
    assert states == {"bob@remote.test": "delivered", "carol@later.test": "pending"}
    dns_server.clear("later.test")
    dns_server.add("later.test", "MX", "10 mx1.remote.test.")
    server.start()
    wait_until(lambda: not queue_json(server), what="the queue to drain after the restart")
    delivered = sorted(r for m in mx.messages for r in m.recipients)
    assert delivered == ["bob@remote.test", "carol@later.test"]  # each exactly once
    assert mailbox(server) == []


def test_queue_commands_reach_the_running_server(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    dns_server.servfail("held.test")
    server = start(make_server, delivery_config(dns_server, mx.port, retry='["1h"]'))
    submit(server, ["x@held.test"])
    wait_until(lambda: any(e["attempts"] for e in queue_json(server)), what="a first attempt")
    [entry] = queue_json(server)
    assert entry["last_error"] and "held.test" in str(entry["last_error"])
    queue_id = str(entry["id"])
    server.cli("queue", "hold", queue_id)
    dns_server.clear("held.test")
    dns_server.add("held.test", "MX", "10 mx1.remote.test.")
    server.cli("queue", "flush", queue_id)  # held: flushing does not send it
    time.sleep(2.5)
    assert mx.messages == []
    assert "held" in server.cli("queue", "list").stdout
    shown = server.cli("queue", "show", queue_id).stdout
    assert "servfail" in shown.lower() or "not found" in shown.lower()
    server.cli("queue", "release", queue_id)
    mx.wait_for(1)
    wait_until(lambda: not queue_json(server), what="delivery after release")

    dns_server.servfail("stuck.test")
    submit(server, ["y@stuck.test"])
    wait_until(lambda: any(e["attempts"] for e in queue_json(server)), what="an attempt")
    [entry] = queue_json(server)
    server.cli("queue", "bounce", str(entry["id"]))
    wait_until(lambda: mailbox(server) and not queue_json(server), what="the bounce")
    [recipient] = parse_report(mailbox(server)[0]).recipients
    assert recipient["Final-Recipient"] == "rfc822; y@stuck.test"
    assert recipient["Action"] == "failed"
    missing = server.cli("queue", "show", "NOSUCHID", check=False)
    assert missing.returncode == 2 and "no such message" in missing.stderr


def test_sendmail_queues_for_remote_and_delivers_locally(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx, tmp_path: Path
) -> None:
    server = start(make_server, delivery_config(dns_server, mx.port))
    message = (
        "To: Bob <bob@remote.test>\nCc: alice@example.test\nBcc: hidden@remote.test\n"
        "Subject: from cron\n\nline one\n.\nnot part of the message\n"
    )
    server.cli("sendmail", "-t", "-f", "alice@example.test", input=message)
    mx.wait_for(1)
    [received] = mx.messages
    assert sorted(received.recipients) == ["bob@remote.test", "hidden@remote.test"]
    assert b"Bcc:" not in received.data
    assert b"line one\r\n" in received.data and b"not part" not in received.data
    [local] = mailbox(server)
    assert b"Subject: from cron" in local and b"Message-ID:" in local and b"Received: by" in local
    # -oi: a lone dot is content; recipients as arguments
    server.cli(
        "sendmail",
        "-oi",
        "-f",
        "alice@example.test",
        "bob@remote.test",
        input="Subject: dots\n\n.\nafter the dot\n",
    )
    mx.wait_for(2)
    assert b"after the dot" in mx.messages[1].data
    unknown = server.cli("sendmail", "nobody@example.test", input="Subject: x\n\nx\n", check=False)
    assert unknown.returncode == 67 and "no such local user" in unknown.stderr


def test_mx_pointing_at_this_server_bounces_with_local_configuration_error(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, mx: FakeMx
) -> None:
    dns_server.add("loop.test", "MX", "10 mx.example.test.")  # our own hostname
    server = start(make_server, delivery_config(dns_server, mx.port))
    submit(server, ["someone@loop.test"])
    wait_until(lambda: mailbox(server) and not queue_json(server), what="the bounce")
    report = parse_report(mailbox(server)[0])
    assert report.recipients[0]["Status"] == "5.4.6"
    assert "Local configuration error" in report.human
    assert mx.messages == []
