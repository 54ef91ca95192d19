"""``todoku store migrate`` and ``serve`` with ``[store] backend = "postgresql"``, as an operator
runs them: the command in a process of its own, the configuration in a file (issue 19)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import PgCluster

SRC = Path(__file__).resolve().parents[3] / "src"


def todoku(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "todoku", *args, "--config", str(config)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def empty_url(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.new_database(template="template0")
    yield url
    pg_cluster.drop_database(url)


def write_config(root: Path, url: str, extra: str = "") -> Path:
    path = root / "todoku.toml"
    path.write_text(
        'hostname = "mx.example.test"\n'
        'domains = ["example.test"]\n'
        'data_dir = "data"\n'
        "[listen]\n"
        'smtp = "127.0.0.1:0"\n'
        "[store]\n"
        'backend = "postgresql"\n'
        f'url = "{url}"\n' + extra
    )
    return path


def test_store_migrate_applies_the_schema_once(tmp_path: Path, empty_url: str) -> None:
    config = write_config(tmp_path, empty_url)
    first = todoku(config, "store", "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 1 (" in first.stdout
    again = todoku(config, "store", "migrate")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


def test_an_unreachable_database_is_one_line(tmp_path: Path, pg_cluster: PgCluster) -> None:
    config = write_config(tmp_path, pg_cluster.url("no_such_database"), 'timeout = "2s"\n')
    result = todoku(config, "store", "migrate")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("todoku: store: database unavailable")


def test_serve_on_postgresql_says_what_is_missing_and_exits_2(tmp_path: Path, pg_url: str) -> None:
    result = todoku(write_config(tmp_path, pg_url), "serve")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith('todoku: configuration error: store.backend: "postgresql" is ready')


def test_a_store_mistake_is_one_line_and_status_2(tmp_path: Path, pg_url: str) -> None:
    config = write_config(tmp_path, pg_url, 'blobs = "files"\n')
    result = todoku(config, "store", "migrate")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("todoku: configuration error: store.blobs:")
