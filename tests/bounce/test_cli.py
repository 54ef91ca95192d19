"""`todoku explain` end to end: a real process, real files, mbox, Maildir, stdin, no config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.bounce.helpers import exim_text, postfix_dsn

KEYS = {
    "file",
    "recipient",
    "reason",
    "status",
    "reply_code",
    "remote_mta",
    "diagnostic",
    "permanent",
    "cause",
    "remedy",
    "date",
}


def explain(
    *args: str, cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "todoku", "explain", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def json_lines(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


def test_json_per_recipient_with_an_unreadable_file_in_the_middle(tmp_path: Path) -> None:
    first = tmp_path / "unknown.eml"
    first.write_bytes(postfix_dsn("nobody@example.org", "5.1.1", "550 5.1.1 User unknown"))
    plain = tmp_path / "plain.eml"
    plain.write_bytes(b"From: a@example.org\nTo: b@example.org\nSubject: hi\n\nhello\n")
    last = tmp_path / "relay.eml"
    last.write_bytes(
        exim_text("far@example.org", "554 5.7.1 <far@example.org>: Relay access denied")
    )
    result = explain(
        "--json", str(first), str(tmp_path / "missing.eml"), str(plain), str(last), cwd=tmp_path
    )
    assert result.returncode == 1  # one input could not be read, the others were explained
    lines = json_lines(result)
    assert [line.get("reason") for line in lines] == [
        "userunknown",
        None,
        "notbounce",
        "norelaying",
    ]
    assert KEYS <= set(lines[0])
    assert lines[0]["recipient"] == "nobody@example.org" and lines[0]["status"] == "5.1.1"
    assert lines[0]["reply_code"] == 550 and lines[0]["permanent"] is True
    assert lines[0]["remote_mta"] == "mx.example.org"
    assert lines[1]["file"].endswith("missing.eml") and "no such file" in lines[1]["error"]
    assert "587" in str(lines[3]["remedy"])
    assert b"Traceback" not in result.stderr


def test_text_in_japanese_from_stdin(tmp_path: Path) -> None:
    data = postfix_dsn("taro@gmial.com", "5.1.2", "550 5.1.2 Host or domain name not found")
    result = explain("--lang", "ja", "-", cwd=tmp_path, stdin=data)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "hostunknown" in out and "taro@gmial.com" in out
    assert "原因" in out and "対処" in out and "gmail.com" in out


def test_language_comes_from_the_configuration_when_present(tmp_path: Path) -> None:
    (tmp_path / "todoku.toml").write_text('lang = "ja"\n')
    data = exim_text("who@example.org", "550 5.1.1 No such user")
    result = explain("-", cwd=tmp_path, stdin=data)
    assert "宛先" in result.stdout.decode()
    result = explain("--lang", "en", "-", cwd=tmp_path, stdin=data)
    assert "recipient" in result.stdout.decode()


def test_mbox_and_maildir(tmp_path: Path) -> None:
    one = postfix_dsn("a@example.org", "5.2.2", "552 5.2.2 Mailbox full").replace(b"\r\n", b"\n")
    two = exim_text("b@example.org", "550 5.1.1 No such user")
    mbox = tmp_path / "bounces.mbox"
    mbox.write_bytes(
        b"From MAILER-DAEMON Sat Nov 28 03:00:00 2026\n"
        + one
        + b"\n"
        + b"From MAILER-DAEMON Sat Nov 28 03:01:00 2026\n"
        + two
        + b"\n"
    )
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(two)
    (maildir / "tmp" / "2.host").write_bytes(b"half-written")  # never read: not delivered yet
    result = explain("--json", str(mbox), str(maildir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result)
    assert [(line["file"].rsplit("/", 1)[-1], line["reason"]) for line in lines] == [
        ("bounces.mbox#1", "mailboxfull"),
        ("bounces.mbox#2", "userunknown"),
        ("1.host", "userunknown"),
    ]


def test_cli_default_config_path_is_the_configurations() -> None:
    """The CLI spells out the default path so that explain need not import the schema."""
    from todoku.cli.main import DEFAULT_CONFIG_PATH
    from todoku.config.load import DEFAULT_PATHS

    assert DEFAULT_CONFIG_PATH == DEFAULT_PATHS[0]


def test_explain_starts_without_the_server_modules(tmp_path: Path) -> None:
    """`todoku explain` loads neither the queue (asyncio, dnspython) nor the configuration schema."""
    probe = (
        "import sys\nsys.argv = ['todoku', 'explain', '--json', sys.argv[1]]\n"
        "from todoku.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('asyncio', 'dns', 'todoku') and not m.startswith(('todoku.bounce', 'todoku.cli'))))"
    )
    bounce = tmp_path / "b.eml"
    bounce.write_bytes(postfix_dsn("nobody@example.org", "5.1.1", "550 5.1.1 User unknown"))
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(bounce)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    # todoku.outcome: the delivery outcome's vocabulary (HARD_REASONS), standard library only.
    assert result.stdout.decode().splitlines()[-1] == "['todoku', 'todoku.outcome']"
    assert b'"userunknown"' in result.stdout
