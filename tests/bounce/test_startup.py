"""What `todoku explain` leaves out of its start-up, and the light parts that stand in for it:
the plain reading of the configuration's lang (instead of tomllib)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.bounce.helpers import postfix_dsn
from todoku.bounce.command import _plain_top_level_lang, language_from_config


@pytest.mark.parametrize("text", [
    'lang = "ja"\n',
    "lang = 'ja'  # Japanese\n",
    '# lang = "ja"\nhostname = "x"\n',
    'hostname = "x"\n[listen]\nlang = "ja"\n',
    'lang = "fr"\n',
    'lang = "ja"\nlang = "en"\n',  # a duplicate key: invalid TOML
    'motd = """\nlang = "ja"\n"""\n',
    'language = "ja"\n',
    'lang = "ja" junk\n',
    '"lang" = "ja"\n',
    'hostname = "mx.example.test"\ndomains = ["example.test"]\nlang     = "ja"\n[a]\nb = 1\n',
    "",
])
def test_plain_lang_reading_agrees_with_tomllib(tmp_path: Path, text: str) -> None:
    """Where the plain reader answers, tomllib gives the same answer; otherwise tomllib is used."""
    config = tmp_path / "todoku.toml"
    config.write_text(text, encoding="utf-8")
    try:
        by_tomllib = tomllib.loads(text).get("lang", "en")
        by_tomllib = by_tomllib if by_tomllib in ("en", "ja") else "en"
    except tomllib.TOMLDecodeError:
        by_tomllib = "en"
    plain = _plain_top_level_lang(text)
    assert plain in (None, by_tomllib)
    assert language_from_config(config) == by_tomllib


def test_demo_configuration_is_read_without_tomllib() -> None:
    demo = Path(__file__).resolve().parents[2] / "todoku.toml"
    if not demo.exists():
        pytest.skip("no demo configuration in the checkout")
    text = demo.read_text(encoding="utf-8")
    assert _plain_top_level_lang(text) == tomllib.loads(text).get("lang", "en")


def test_explain_start_up_leaves_out_tomllib_json(tmp_path: Path) -> None:
    (tmp_path / "todoku.toml").write_text('hostname = "mx.example.test"\nlang = "ja"\n')
    bounce = tmp_path / "b.eml"
    bounce.write_bytes(postfix_dsn("nobody@example.org", "5.1.1", "550 5.1.1 User unknown"))
    probe = ("import sys\nfrom todoku.bounce.__main__ import main\nstatus = main(sys.argv[1:])\n"
             "print(sorted(m for m in ('tomllib', 'json', 'argparse') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "TODOKU_CONFIG"}
    result = subprocess.run([sys.executable, "-c", probe, "--json", str(bounce)], cwd=tmp_path,
                            env=env, capture_output=True, timeout=60, check=True)
    lines = result.stdout.decode().splitlines()
    assert lines[-1] == "[]"
    assert '"userunknown"' in lines[0]
    assert not lines[0].split('"cause": ')[1].isascii()  # the configuration's lang = "ja"
