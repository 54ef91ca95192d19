"""Done means: a message submitted by a user leaves DKIM-signed, and independent verifiers accept
the signature. Submission → queue → DNS MX on the loopback DNS server → fake MX on 127.0.0.2;
the keys are the ones ``todoku dns-records`` tells the administrator to publish."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.dnsserver import DnsServer
from tests.mailauth.test_dkim import _opendkim
from tests.mailauth.test_records import parse_zone, txt
from tests.queue.fakemx import FakeMx, fake_mxes
from todoku.mailauth.dkim import signature_keys, verify_signatures

ALICE = "alice@example.test"
BODY = (
    b"From: Alice <alice@example.test>\r\nTo: <bob@remote.test>\r\nSubject: signed\r\n\r\n"
    b"Hello Bob.\r\n"
)


@pytest.fixture
def remote_mx() -> Iterator[FakeMx]:
    with fake_mxes("127.0.0.2") as (fake,):
        yield fake


def sending_server(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, port: int
) -> TodokuServer:
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    extra = (
        f'\n[dns]\nnameservers = ["{dns_server.address}"]\n\n'
        f'[delivery]\nport = {port}\nretry = ["1s"]\nmax_lifetime = "60s"\n'
    )
    server = make_server(extra=extra, services=("smtp", "submission"), start=False)
    server.add_user(ALICE)
    server.start()
    return server


def submit(server: TodokuServer, sender: str, body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        assert client.sendmail(sender, ["bob@remote.test"], body) == {}


def published_keys(server: TodokuServer) -> dict[str, list[str]]:
    records = parse_zone(server.cli("dns-records", "example.test", "--ipv4", "127.0.0.1").stdout)
    names = {name for name, rdtype, _ in records if "._domainkey." in name and rdtype == "TXT"}
    return {name: txt(records, name) for name in names}


def test_submitted_mail_leaves_signed_and_verifies(
    make_server: Callable[..., TodokuServer], dns_server: DnsServer, remote_mx: FakeMx
) -> None:
    server = sending_server(make_server, dns_server, remote_mx.port)
    submit(server, ALICE, BODY)
    [received] = remote_mx.wait_for(1)
    data = received.data
    assert data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    keys = published_keys(server)
    assert {d for d, _ in signature_keys(data)} == {"example.test"}
    results = verify_signatures(data, keys)
    assert [(r.result, r.algorithm) for r in results] == [
        ("pass", "ed25519-sha256"),
        ("pass", "rsa-sha256"),
    ]


@pytest.mark.interop
def test_submitted_mail_verifies_with_opendkim(
    make_server: Callable[..., TodokuServer],
    dns_server: DnsServer,
    remote_mx: FakeMx,
    tmp_path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import json
    import os
    import shutil

    monkeypatch.setenv("PATH", os.environ["PATH"] + ":/usr/sbin:/sbin")
    for tool in ("opendkim-testmsg", "unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs opendkim-tools)")
    if os.geteuid() != 0:
        pytest.skip("needs root to give opendkim a private resolver")
    server = sending_server(make_server, dns_server, remote_mx.port)
    submit(server, ALICE, BODY)
    [received] = remote_mx.wait_for(1)
    zone = tmp_path / "zone.json"
    zone.write_text(
        json.dumps(
            [
                [n, "TXT", " ".join(f'"{t[i : i + 250]}"' for i in range(0, len(t), 250))]
                for n, [t] in published_keys(server).items()
            ]
        )
    )
    result = _opendkim(tmp_path, zone, received.data)
    assert result.returncode == 0, result.stderr
