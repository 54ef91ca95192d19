"""What `python -m todoku.bounce` loads at start-up, and how it finds the language.

The analyzer alone must start without the server: no other todoku package (the configuration
schema, the queue, the network code), no asyncio, no dnspython, no email package (the analyzer
has its own MIME reader). The configuration is read for its ``lang`` only, and a missing or
broken one is not an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bounce.helpers import postfix_dsn
from todoku.bounce.command import language_from_config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('lang = "ja"\n', "ja"),
        ("lang = 'ja'  # Japanese\n", "ja"),
        ('# lang = "ja"\nhostname = "x"\n', "en"),
        ('hostname = "x"\n[listen]\nlang = "ja"\n', "en"),  # a table's key, not the top level
        ('lang = "fr"\n', "en"),  # not a language explain speaks
        ("lang = 1\n", "en"),
        ('lang = "ja"\nlang = "en"\n', "en"),  # a duplicate key: invalid TOML
        ('motd = """\nlang = "ja"\n"""\n', "en"),  # inside a multi-line string
        ('"lang" = "ja"\n', "ja"),
        ('lang = "ja" junk\n', "en"),  # invalid TOML
        ('hostname = "mx.example.test"\nlang     = "ja"\n[a]\nb = 1\n', "ja"),
        ("", "en"),
    ],
)
def test_language_from_the_configuration(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "todoku.toml"
    config.write_text(text, encoding="utf-8")
    assert language_from_config(config) == expected


def test_a_missing_or_unreadable_configuration_means_english(tmp_path: Path) -> None:
    assert language_from_config(None) == "en"
    assert language_from_config(tmp_path / "missing.toml") == "en"
    assert language_from_config(tmp_path) == "en"  # a folder
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('motd = "caf\xe9"\nlang = "ja"\n'.encode("latin-1"))
    assert language_from_config(latin1) == "en"  # TOML is UTF-8


def test_the_analyzer_alone_starts_without_the_server(tmp_path: Path) -> None:
    (tmp_path / "todoku.toml").write_text('hostname = "mx.example.test"\nlang = "ja"\n')
    bounce = tmp_path / "b.eml"
    bounce.write_bytes(postfix_dsn("nobody@example.org", "5.1.1", "550 5.1.1 User unknown"))
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['todoku.bounce', '--json', sys.argv[1]]\n"
        "try:\n    runpy.run_module('todoku.bounce', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'dns', 'email')"
        " or m.startswith('todoku.') and not m.startswith('todoku.bounce')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(bounce)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    # todoku.outcome: the delivery outcome's vocabulary (HARD_REASONS), standard library only.
    assert lines[-1] == "['todoku.outcome']"
    assert '"userunknown"' in lines[0]
    assert not lines[0].split('"cause": ')[1].isascii()  # the configuration's lang = "ja"
