"""`todoku explain`'s fast paths give the same results as the full ones.

Start-up is part of a whole run's time, so the usual argument shapes skip click and argparse,
JSON lines are written without the json module, folders are listed without pathlib, and the
analyzer imports none of these. Each shortcut is checked here against the general path it
replaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bounce.helpers import exim_text, postfix_dsn
from todoku.bounce.__main__ import Arguments, plain_arguments
from todoku.bounce.analyze import Diagnosis
from todoku.bounce.render import as_json, error_json, json_string


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          timeout=120, check=False)


def _click(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """`todoku explain ARGUMENTS` through click, as the console script runs it."""
    probe = ("import sys\nfrom todoku.cli.main import main\n"
             f"sys.argv = ['todoku', 'explain', *{arguments!r}]\nmain()\n")
    return _run("-c", probe, cwd=cwd)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--json", "a"], Arguments(True, None, None, ["a"])),
    (["--lang", "ja", "a", "b"], Arguments(False, "ja", None, ["a", "b"])),
    (["--lang=en", "--config", "c.toml", "-"], Arguments(False, "en", "c.toml", ["-"])),
    (["--config=c.toml", "--", "--json"], Arguments(False, None, "c.toml", ["--json"])),
    (["--help"], None),
    (["--js", "a"], None),  # abbreviations are argparse's / click's business
    (["--lang", "fr", "a"], None),
    (["--json"], None),  # no input: the full parser prints the usage error
])
def test_plain_arguments(argv: list[str], expected: Arguments | None) -> None:
    assert plain_arguments(argv) == expected


def test_json_lines_are_what_json_dumps_writes() -> None:
    awkward = "".join(map(chr, range(0x30))) + '"\\ é 届く \u2028 \x7f'
    diagnosis = Diagnosis(awkward, "userunknown", "5.1.1", 550, "mx.example", awkward, True,
                          "Sat, 28 Nov 2026", "cause", "remedy")
    assert as_json("dir/f", diagnosis) == json.dumps(diagnosis.to_json("dir/f"),
                                                     ensure_ascii=False)
    no_code = Diagnosis("", "notbounce", "", None, "", "", False, "")
    assert json.loads(as_json("f", no_code))["reply_code"] is None
    assert as_json("f", no_code) == json.dumps(no_code.to_json("f"), ensure_ascii=False)
    assert error_json("f\n", "cannot read") == json.dumps({"file": "f\n", "error": "cannot read"},
                                                          ensure_ascii=False)
    assert json.loads(json_string(awkward)) == awkward


def test_fast_and_click_paths_agree(tmp_path: Path) -> None:
    folder = tmp_path / "bounces"
    folder.mkdir()
    (folder / "1.eml").write_bytes(postfix_dsn("a@example.org", "5.2.2", "552 5.2.2 Mailbox full"))
    (folder / "2.eml").write_bytes(exim_text("b@example.org", "550 5.1.1 No such user"))
    (folder / ".hidden").write_bytes(b"not read")
    fast = _run("-m", "todoku", "explain", "--json", "./bounces//", cwd=tmp_path)
    bounce = _run("-m", "todoku.bounce", "--json", "./bounces//", cwd=tmp_path)
    full = _click(["--json", "./bounces//"], cwd=tmp_path)
    assert fast.returncode == bounce.returncode == full.returncode == 0, full.stderr
    assert fast.stdout == bounce.stdout == full.stdout
    files = [json.loads(line)["file"] for line in fast.stdout.decode().splitlines()]
    assert files == ["bounces/1.eml", "bounces/2.eml"]  # as pathlib prints the path
    text_fast = _run("-m", "todoku", "explain", "--lang", "ja", "bounces", "missing", cwd=tmp_path)
    text_full = _click(["--lang", "ja", "bounces", "missing"], cwd=tmp_path)
    assert text_fast.returncode == text_full.returncode == 1  # an unreadable input
    assert text_fast.stdout == text_full.stdout
    assert "宛先" in text_fast.stdout.decode()
    assert text_fast.stderr == text_full.stderr


def test_explain_imports_only_what_it_needs(tmp_path: Path) -> None:
    bounce = tmp_path / "b.eml"
    bounce.write_bytes(postfix_dsn("nobody@example.org", "5.1.1", "550 5.1.1 User unknown"))
    probe = ("import runpy, sys\nsys.argv = ['todoku', 'explain', '--json', sys.argv[1]]\n"
             "try:\n    runpy.run_module('todoku', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = ('click', 'argparse', 'pathlib', 'json', 'tomllib', 'email', 'typing',"
             " 'asyncio')\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    result = _run("-c", probe, str(bounce), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b'"userunknown"' in result.stdout
    # runpy itself brings importlib machinery, none of the above.
    assert result.stdout.decode().splitlines()[-1] == "[]"


def test_default_config_paths_agree() -> None:
    from todoku.bounce.__main__ import DEFAULT_CONFIG_PATH
    from todoku.config.load import DEFAULT_PATHS

    assert DEFAULT_CONFIG_PATH == DEFAULT_PATHS[0]
