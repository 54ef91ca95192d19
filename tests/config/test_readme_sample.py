"""The configuration samples in README.md load (issue 14: the sample once put pop3/pop3s under
[tls] and failed with 'tls.pop3: unknown key'). Every ```toml block that the README presents as a
whole configuration file (it has a top-level ``hostname``) is loaded as is, with the files it
names created empty beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from todoku.config.load import load_config

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


def whole_samples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [b for b in BLOCK.findall(text) if re.search(r"^hostname\s*=", b, re.MULTILINE)]


def test_the_readme_has_a_whole_sample() -> None:
    assert whole_samples(), "README.md lost its sample configuration"


@pytest.mark.parametrize("sample", whole_samples())
def test_each_whole_sample_loads(sample: str, tmp_path: Path) -> None:
    for name in re.findall(
        r'^\s*(?:cert|key|password_file|file)\s*=\s*"([^"]+)"', sample, re.MULTILINE
    ):
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600)
    path = tmp_path / "todoku.toml"
    path.write_text(sample, encoding="utf-8")
    config = load_config(path)
    assert config.domains
