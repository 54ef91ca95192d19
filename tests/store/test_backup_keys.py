"""Issue 16: a backup restores a *working* server (DKIM keys with their rotation state, the
self-signed TLS files), and ``todoku backup --verify`` checks a backup against its manifest.

Everything goes through the ``todoku`` command in a subprocess, as an administrator would run it;
no server is needed (keys are made by ``dns-records``, the certificate by the server's own
``make_self_signed``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from tests.store.test_backup import small_backup
from todoku.mailauth.dkim import KeyStore, Signer, verify_signatures
from todoku.net.tls import make_self_signed

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: signed before the backup\r\n"
    b"Date: Sat, 28 Nov 2026 03:00:00 +0000\r\n"
    b"Message-ID: <issue16@example.test>\r\n"
    b"\r\n"
    b"Hello Bob\r\n"
)
DOMAINS = ("example.test", "example.org")


def todoku(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "todoku", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(config: Path, *args: str, stdin: str | None = None) -> str:
    result = todoku(config, *args, stdin=stdin)
    assert result.returncode == 0, f"todoku {' '.join(args)}: {result.stderr}"
    return result.stdout


def new_config(root: Path, name: str) -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        'hostname = "mx.example.test"\ndomains = ["example.test", "example.org"]\n'
        f'data_dir = "{root / name}"\n\n[dns]\nnameservers = ["127.0.0.1:1"]\n'
    )
    return path


def records(config: Path) -> str:
    """``dns-records`` for a fixed address; the MTA-STS id is the time it is printed, so it is
    the one value that may differ between two runs."""
    out = ok(config, "dns-records", "--ipv4", "192.0.2.25")
    return re.sub(r"id=\d{14}", "id=<now>", out)


def test_restore_into_an_empty_directory_gives_back_keys_rotation_and_certificate(
    tmp_path: Path,
) -> None:
    old = new_config(tmp_path, "old")
    ok(old, "user", "add", "alice@example.test", "--password-stdin", stdin="password123\n")
    ok(old, "dkim", "rotate", "example.org")  # a rotation in progress must survive too
    published = records(old)
    status = ok(old, "dkim", "status")
    make_self_signed(
        tmp_path / "old" / "tls" / "cert.pem",
        tmp_path / "old" / "tls" / "key.pem",
        "mx.example.test",
    )
    signed = Signer(KeyStore(tmp_path / "old"), DOMAINS).signature_headers(
        MESSAGE, "alice@example.test"
    )
    assert signed.count(b"DKIM-Signature:") == 2

    out = ok(old, "backup", str(tmp_path / "backup"))
    assert "included DKIM keys of example.org, example.test and the TLS certificate and key" in out
    saved = [p for p in (tmp_path / "backup").rglob("*") if p.parts[-2] in ("tls", *DOMAINS)]
    assert len(saved) == 2 + 3 + 5  # cert and key; state + 2 keys; state + 4 keys (rotating)
    for path in saved:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    new = new_config(tmp_path, "new")
    out = ok(new, "restore", str(tmp_path / "backup"))
    assert "restored the DKIM keys of example.org, example.test" in out
    assert "restored the TLS certificate and key" in out
    assert records(new) == published
    assert ok(new, "dkim", "status") == status
    for name in ("cert.pem", "key.pem"):
        restored = tmp_path / "new" / "tls" / name
        assert restored.read_bytes() == (tmp_path / "old" / "tls" / name).read_bytes()
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600

    # The signature made before the backup verifies with the keys the restored server publishes.
    keys = KeyStore(tmp_path / "new").load("example.test")
    in_dns = {key.record_name: [key.record_text] for key, _ in keys.published()}
    assert [r.result for r in verify_signatures(signed + MESSAGE, in_dns)] == ["pass", "pass"]


def test_restore_keeps_keys_the_directory_already_has_and_says_what_to_publish(
    tmp_path: Path,
) -> None:
    old = new_config(tmp_path, "old")
    ok(old, "user", "add", "alice@example.test", "--password-stdin", stdin="password123\n")
    records(old)  # makes the keys
    ok(old, "backup", str(tmp_path / "backup"))

    started = new_config(tmp_path, "started")  # the new machine's server was started first
    ours = records(started)
    out = ok(started, "restore", str(tmp_path / "backup"))
    assert records(started) == ours  # nothing replaced under the running server
    kept = [line for line in out.splitlines() if line.startswith("dkim:")]
    selectors = ", ".join(KeyStore(tmp_path / "started").load("example.test").active.selectors)
    assert kept[1] == (
        f"dkim: example.test already has its own keys here (selectors {selectors}, the same names"
        " as the backup's but other keys): kept them; publish the records"
        " 'todoku dns-records example.test' prints"
    )
    assert len(kept) == 2 and kept[0].startswith("dkim: example.org already has its own keys")


def test_backup_verify_finds_every_changed_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    KeyStore(source).load("example.test")
    backup_dir = small_backup(tmp_path)  # also backs up tmp_path/source
    config = new_config(tmp_path, "unused")  # --verify needs no configuration, but gets one

    good = todoku(config, "backup", "--verify", str(backup_dir))
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        (
            f"backup in {backup_dir} verified: the index passes integrity_check; 2 message files"
            " and 3 key and certificate files match the manifest"
        )
    ]

    manifest = json.loads((backup_dir / "manifest.json").read_text())
    first, second = sorted(manifest["blobs"])
    key = next((backup_dir / "dkim" / "example.test").glob("*r.key"))
    data = bytearray(key.read_bytes())
    data[100] ^= 1  # same size, other bytes
    key.write_bytes(bytes(data))
    (backup_dir / "messages" / first[:5] / first).unlink()
    del manifest["blobs"][second]  # the index names a file the manifest no longer lists
    (backup_dir / "manifest.json").write_text(json.dumps(manifest))

    bad = todoku(config, "backup", "--verify", str(backup_dir))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"todoku: {backup_dir / 'messages' / first[:5] / first}: missing",
        f"todoku: {key}: SHA-256 differs from the manifest's (changed or damaged)",
        (
            f"todoku: {backup_dir / 'todoku.db'}: names message file '{second}',"
            " which the manifest does not list"
        ),
    ]


def test_backup_verify_runs_integrity_check(tmp_path: Path) -> None:
    backup_dir = small_backup(tmp_path)
    db = backup_dir / "todoku.db"
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()[0]
    conn.close()
    # Damage the messages table's b-tree page header, then make the manifest agree with the
    # damaged file: only integrity_check can tell.
    with open(db, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\x0d\xff\xff\xff\xff\xff\xff\xff")
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    raw = db.read_bytes()
    manifest["database"] = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (backup_dir / "manifest.json").write_text(json.dumps(manifest))

    result = todoku(new_config(tmp_path, "unused"), "backup", "--verify", str(backup_dir))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"todoku: {db}: ") for line in lines), lines
    assert any("integrity_check" in line or "not a readable" in line for line in lines), lines


def test_backup_verify_of_a_directory_that_is_no_backup(tmp_path: Path) -> None:
    result = todoku(new_config(tmp_path, "unused"), "backup", "--verify", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"todoku: {tmp_path}: no manifest.json here: not a todoku backup, or an unfinished one"
    ]
    assert not os.path.exists(tmp_path / "unused")
