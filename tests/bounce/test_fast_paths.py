"""`todoku explain` and `python -m todoku.bounce` (the analyzer alone) behave alike, and the JSON
lines carry every field of Diagnosis.

The two commands are separate click commands (the analyzer package imports nothing of the
command line), so these tests are what keeps their options, output and exit statuses the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

from tests.bounce.helpers import exim_text, postfix_dsn
from todoku.bounce.analyze import Diagnosis
from todoku.bounce.render import as_json, error_json


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"} | env
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _both(*args: str, cwd: Path, **env: str) -> list[subprocess.CompletedProcess[bytes]]:
    """The same arguments to `todoku explain` and to `python -m todoku.bounce`."""
    return [
        _run("-m", "todoku", "explain", *args, cwd=cwd, **env),
        _run("-m", "todoku.bounce", *args, cwd=cwd, **env),
    ]


def test_json_line_is_the_file_then_every_field_of_diagnosis() -> None:
    awkward = "".join(map(chr, range(0x30))) + '"\\ é 届く \u2028 \x7f'
    diagnosis = Diagnosis(
        awkward, "userunknown", "5.1.1", 550, "mx.example", awkward, True, "Sat, 28 Nov 2026"
    )
    line = as_json("dir/f", diagnosis)
    assert "\n" not in line
    assert "届く" in line  # UTF-8, not \\u escapes
    loaded = json.loads(line)
    assert list(loaded) == ["file", *(field.name for field in fields(Diagnosis))]
    # (json.dumps writes a tuple field, such as evidence, as a list)
    assert loaded == json.loads(json.dumps({"file": "dir/f", **asdict(diagnosis)}))
    no_code = Diagnosis("", "notbounce", "", None, "", "", False, "")
    assert json.loads(as_json("f", no_code))["reply_code"] is None
    assert json.loads(error_json("f\n", "cannot read")) == {"file": "f\n", "error": "cannot read"}


def test_both_commands_give_the_same_json_and_text(tmp_path: Path) -> None:
    folder = tmp_path / "bounces"
    folder.mkdir()
    (folder / "1.eml").write_bytes(postfix_dsn("a@example.org", "5.2.2", "552 5.2.2 Mailbox full"))
    (folder / "2.eml").write_bytes(exim_text("b@example.org", "550 5.1.1 No such user"))
    (folder / ".hidden").write_bytes(b"not read")
    explain, bounce = _both("--json", "./bounces//", cwd=tmp_path)
    assert explain.returncode == bounce.returncode == 0, explain.stderr + bounce.stderr
    assert explain.stdout == bounce.stdout
    files = [json.loads(line)["file"] for line in explain.stdout.decode().splitlines()]
    assert files == ["bounces/1.eml", "bounces/2.eml"]
    explain, bounce = _both("--lang", "ja", "bounces", "missing", cwd=tmp_path)
    assert explain.returncode == bounce.returncode == 1  # an unreadable input
    assert explain.stdout == bounce.stdout
    assert "宛先" in explain.stdout.decode()
    assert explain.stderr == bounce.stderr
    assert b"missing" in explain.stderr


def test_both_commands_find_the_configuration_alike(tmp_path: Path) -> None:
    data = exim_text("who@example.org", "550 5.1.1 No such user")
    (tmp_path / "b.eml").write_bytes(data)
    (tmp_path / "ja.toml").write_text('lang = "ja"\n')
    for env in ({}, {"TODOKU_CONFIG": "ja.toml"}):
        explain, bounce = _both("b.eml", cwd=tmp_path, **env)
        assert explain.stdout == bounce.stdout
        assert ("宛先" in explain.stdout.decode()) == bool(env)
    explain, bounce = _both("--config", "ja.toml", "b.eml", cwd=tmp_path)
    assert explain.stdout == bounce.stdout
    assert "宛先" in explain.stdout.decode()


def test_both_commands_refuse_bad_arguments_alike(tmp_path: Path) -> None:
    for arguments in (["--json"], ["--lang", "fr", "x"], ["--jsn", "x"]):
        explain, bounce = _both(*arguments, cwd=tmp_path)
        assert explain.returncode == bounce.returncode == 2, arguments  # click's usage error
        assert explain.stdout == bounce.stdout == b""
        last = [result.stderr.decode().splitlines()[-1] for result in (explain, bounce)]
        assert last[0] == last[1] and last[0].startswith("Error: ")


def test_default_config_paths_agree() -> None:
    from todoku.bounce.__main__ import DEFAULT_CONFIG_PATH
    from todoku.config.load import DEFAULT_PATHS

    assert DEFAULT_CONFIG_PATH == DEFAULT_PATHS[0]
