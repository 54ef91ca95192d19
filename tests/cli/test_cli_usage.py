"""Issue 16: ``--config`` before or after any subcommand, and unknown addresses as errors.

Each case runs the ``todoku`` command in a subprocess from a directory without a todoku.toml,
so only the ``--config`` given can make it work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER = "alice@example.test"


def todoku(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "todoku", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    path = root / "todoku.toml"
    path.write_text(
        f'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "{root / "data"}"\n'
    )
    added = todoku(
        root, "user", "add", USER, "--password-stdin", "--config", str(path), stdin="password123\n"
    )
    assert added.returncode == 0, added.stderr
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "{config}", "queue", "list"],
        ["queue", "--config", "{config}", "list"],
        ["queue", "list", "--config", "{config}"],
        ["--config", "{config}", "user", "list"],
        ["user", "--config", "{config}", "list"],
        ["--config", "{config}", "mailbox", "deleted", USER],
        ["--config", "{config}", "dkim", "status"],
    ],
)
def test_config_before_or_after_the_subcommand(
    config: Path, tmp_path: Path, args: list[str]
) -> None:
    result = todoku(tmp_path, *[a.format(config=config) for a in args])
    assert result.returncode == 0, result.stderr
    assert "No such option" not in result.stderr


def test_the_innermost_config_wins_and_a_missing_one_is_one_line(
    config: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nothing.toml"
    inner = todoku(tmp_path, "--config", str(missing), "user", "list", "--config", str(config))
    assert inner.returncode == 0 and USER in inner.stdout, inner.stderr
    outer = todoku(tmp_path, "--config", str(missing), "user", "list")
    assert outer.returncode == 2
    assert outer.stderr.splitlines() == [
        f"todoku: configuration error: {missing}: no such configuration file (use --config PATH)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mailbox", "deleted", "nosuch@example.test"], "no such user or mailbox"),
        (["mailbox", "undelete", "nosuch@example.test", "--all"], "no such user or mailbox"),
        (["user", "passwd", "nosuch@example.test", "--password-stdin"], "no such user"),
        (["user", "del", "nosuch@example.test"], "no such user"),
        (["alias", "del", "nosuch@example.test"], "no such alias"),
        (["alias", "add", "info@example.test", "nosuch@example.test"], "no such user or alias"),
    ],
)
def test_unknown_addresses_are_errors(
    config: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = todoku(tmp_path, *args, "--config", str(config), stdin="password123\n")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("todoku: nosuch@example.test")
        and message in lines[0]
    )


def test_known_addresses_still_work(config: Path, tmp_path: Path) -> None:
    deleted = todoku(tmp_path, "mailbox", "deleted", USER, "--config", str(config))
    assert deleted.returncode == 0 and f"0 deleted messages in {USER}" in deleted.stdout
    alias = todoku(tmp_path, "alias", "add", "info@example.test", USER, "--config", str(config))
    assert alias.returncode == 0, alias.stderr
    remote = todoku(
        tmp_path, "alias", "add", "fwd@example.test", "x@elsewhere.test", "--config", str(config)
    )
    assert remote.returncode == 0, remote.stderr  # a remote target is not ours to check
    by_alias = todoku(tmp_path, "mailbox", "deleted", "info@example.test", "--config", str(config))
    assert by_alias.returncode == 1
    assert by_alias.stderr.splitlines() == [
        f"todoku: info@example.test: an alias (of {USER}), not a mailbox"
    ]
