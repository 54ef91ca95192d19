"""DKIM keys, rotation, and signatures checked by independent verifiers (dkimpy and OpenDKIM)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from todoku.config.load import PolicyConfig
from todoku.mailauth.dkim import KeyStore, Signer, verify_signatures
from todoku.mailauth.inbound import InboundPolicy
from todoku.mailauth.lookup import ResolverLookups

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: =?UTF-8?B?5bGK44GP?=\r\n"
    b"Date: Sat, 28 Nov 2026 03:00:00 +0000\r\n"
    b"Message-ID: <1.test@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n\r\n  trailing spaces   \r\n.leading dot\r\n"
)
DAY = 86400.0
NOW = 1_795_867_200.0  # 2026-11-28 12:00 UTC


def records_of(signer: Signer, domain: str) -> dict[str, list[str]]:
    return {key.record_name: [key.record_text] for key, _ in signer.keys(domain).published()}


def test_keys_made_on_first_use_private_and_reused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    keys = store.load("example.test", NOW)
    assert keys.active.selectors == ("20261128e", "20261128r")
    assert {k.algorithm for k in keys.active.keys} == {"ed25519", "rsa"}
    for key in keys.active.keys:
        mode = stat.S_IMODE(
            os.stat(tmp_path / "dkim" / "example.test" / f"{key.selector}.key").st_mode
        )
        assert mode == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "dkim").st_mode) == 0o700
    again = KeyStore(tmp_path).load("example.test", NOW + 10)
    assert [k.public_b64 for k in again.active.keys] == [k.public_b64 for k in keys.active.keys]


def test_rotation_publishes_first_then_switches_then_retires(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, grace=3 * DAY)
    first = store.load("example.test", NOW)
    rotated = store.rotate("example.test", NOW + DAY)
    assert rotated.pending is not None and rotated.pending.selectors == ("20261129e", "20261129r")
    # Before the grace period: still signing with the old keys, both sets published.
    during = store.load("example.test", NOW + 2 * DAY)
    assert during.active.selectors == first.active.selectors
    assert {role for _, role in during.published()} == {"active", "pending"}
    after = store.load("example.test", NOW + 4.5 * DAY)
    assert after.active.selectors == ("20261129e", "20261129r")
    assert [role for _, role in after.published()].count("retired") == 2
    gone = store.load("example.test", NOW + 8 * DAY)
    assert gone.retired == []
    assert not (tmp_path / "dkim" / "example.test" / "20261128r.key").exists()


def test_signature_verifies_with_dkimpy_and_fails_when_changed(tmp_path: Path) -> None:
    signer = Signer(KeyStore(tmp_path), ("example.test",))
    headers = signer.signature_headers(MESSAGE, "alice@example.test", NOW)
    assert headers.count(b"DKIM-Signature:") == 2
    records = records_of(signer, "example.test")
    good = verify_signatures(headers + MESSAGE, records)
    assert [(r.result, r.algorithm) for r in good] == [
        ("pass", "ed25519-sha256"),
        ("pass", "rsa-sha256"),
    ]
    tampered = verify_signatures(headers + MESSAGE.replace(b"Hello Bob", b"Hello Eve"), records)
    assert {r.result for r in tampered} == {"fail"}
    assert (
        signer.signature_headers(MESSAGE.replace(b"example.test>", b"other.test>"), "x@other.test")
        == b""
    )


async def test_inbound_dkim_and_authentication_results(
    tmp_path: Path, dns_server: DnsServer, lookups: ResolverLookups
) -> None:
    signer = Signer(KeyStore(tmp_path), ("example.test",))
    signed = signer.signature_headers(MESSAGE, "alice@example.test") + MESSAGE
    for name, texts in records_of(signer, "example.test").items():
        dns_server.add(
            name,
            "TXT",
            " ".join(f'"{texts[0][i : i + 250]}"' for i in range(0, len(texts[0]), 250)),
        )
    dns_server.add("_dmarc.example.test", "TXT", '"v=DMARC1; p=reject"')
    policy = InboundPolicy(PolicyConfig(), lookups, "mx.remote.test")
    verdict = await policy.on_message(
        "203.0.113.9", "out.example.test", "alice@example.test", signed
    )
    header = verdict.prefix.decode()
    assert header.startswith("Authentication-Results: mx.remote.test;")
    selectors = signer.keys("example.test").active.selectors
    for selector, algorithm in zip(selectors, ("ed25519-sha256", "rsa-sha256"), strict=True):
        assert f"dkim=pass header.d=example.test header.s={selector} header.a={algorithm}" in header
    assert "spf=none smtp.mailfrom=alice@example.test" in header
    assert "dmarc=pass policy.dmarc=reject header.from=example.test" in header
    assert verdict.reject is None and not verdict.junk


def _write_zone(path: Path, signer: Signer) -> None:
    zone = []
    for name, texts in records_of(signer, "example.test").items():
        text = texts[0]
        zone.append(
            [name, "TXT", " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))]
        )
    path.write_text(json.dumps(zone))


def _opendkim(tmp_path: Path, zone: Path, message: bytes) -> subprocess.CompletedProcess[str]:
    message_path = tmp_path / "message.eml"
    message_path.write_bytes(message)
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--net",
            sys.executable,
            "-m",
            "tests.mailauth.opendkim_ns",
            str(zone),
            str(message_path),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_signature_verifies_with_opendkim(
    tmp_path: Path, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PATH", os.environ["PATH"] + ":/usr/sbin:/sbin"
    )  # Debian puts the tools there
    if shutil.which("opendkim-testmsg") is None and not Path("/usr/sbin/opendkim-testmsg").exists():
        pytest.skip(
            "opendkim-testmsg is not installed (apt-get install opendkim-tools); .ci/run installs it"
        )
    if shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root, unshare and ip (iproute2) to give opendkim a private resolver")
    # One signature at a time, so each algorithm is judged on its own.
    signer = Signer(KeyStore(tmp_path), ("example.test",), algorithms=(algorithm,))
    headers = signer.signature_headers(MESSAGE, "alice@example.test")
    assert headers.count(b"DKIM-Signature:") == 1
    zone = tmp_path / "zone.json"
    _write_zone(zone, signer)
    good = _opendkim(tmp_path, zone, headers + MESSAGE)
    if (
        good.returncode != 0
        and "unshare" in good.stderr
        and "Operation not permitted" in good.stderr
    ):
        pytest.skip(f"cannot create namespaces here: {good.stderr.strip()}")
    assert good.returncode == 0, good.stderr
    bad = _opendkim(tmp_path, zone, headers + MESSAGE.replace(b"Hello Bob", b"Hello Eve"))
    assert bad.returncode != 0, bad.stderr


def test_outbound_prefix_signs_for_local_domains_only(tmp_path: Path) -> None:
    """Whether to sign is the queue's decision (``QueueEntry.submitted_by``, see
    test_signing_oracle.py); the hook signs what it is given when the domain is ours."""
    signer = Signer(KeyStore(tmp_path), ("example.test",))
    prefix = signer.outbound_prefix(MESSAGE, "alice@example.test")
    assert prefix.count(b"DKIM-Signature:") == 2
    assert {
        r.result for r in verify_signatures(prefix + MESSAGE, records_of(signer, "example.test"))
    } == {"pass"}
    foreign = MESSAGE.replace(b"alice@example.test", b"carol@remote.test")
    assert signer.outbound_prefix(foreign, "carol@remote.test") == b""
