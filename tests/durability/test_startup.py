"""A data directory the server cannot use: one clear line at start-up and exit status 2.

The read-only case mounts a real read-only tmpfs; the permission cases run ``todoku serve`` as
the unprivileged user ``nobody`` (root ignores file modes, so it cannot show them). Both need
root and are skipped without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config

NOBODY = 65534


def serve_once(config: Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "todoku", "serve", "--config", str(config)]
    if as_nobody:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to run the server as another user")
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
        probe = subprocess.run(
            [*command[:4], sys.executable, "-c", "import todoku.cli.main"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode != 0:
            # e.g. a clone inside a `mktemp -d` directory (mode 0700): nobody cannot load the code.
            pytest.skip(
                f"user nobody cannot load todoku from this checkout: {probe.stderr.strip()[-200:]}"
            )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("todoku serve started on a data directory it cannot use") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, f"expected one line, got: {result.stderr}"
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A directory ``nobody`` can read (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the server as another user")
    root = Path(tempfile.mkdtemp(prefix="todoku-perm-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_read_only_file_system(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(data)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        config = write_config(tmp_path, services=("smtp",), data_dir=str(data))
        result = serve_once(config)
    finally:
        subprocess.run(["umount", str(data)], check=True)
    assert_one_clear_line(result, "data_dir", str(data), "read-only")


def test_data_dir_owned_by_someone_else(shared_root: Path) -> None:
    data = shared_root / "data"
    data.mkdir(mode=0o755)  # root's, and not writable by nobody
    config = write_config(shared_root, services=("smtp",), data_dir=str(data))
    config.chmod(0o644)
    result = serve_once(config, as_nobody=True)
    assert_one_clear_line(result, "data_dir", str(data), "not writable by nobody", "chown")


def test_database_file_owned_by_someone_else(shared_root: Path) -> None:
    data = shared_root / "data"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)
    (data / "todoku.db").write_bytes(b"")
    (data / "todoku.db").chmod(0o644)  # left behind by a run as root
    config = write_config(shared_root, services=("smtp",), data_dir=str(data))
    config.chmod(0o644)
    result = serve_once(config, as_nobody=True)
    assert_one_clear_line(result, "data_dir", "todoku.db", "not writable by nobody")


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory")
    config = write_config(tmp_path, services=("smtp",), data_dir=str(data))
    result = serve_once(config)
    assert_one_clear_line(result, "data_dir", str(data))
