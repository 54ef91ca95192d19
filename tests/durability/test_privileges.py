"""Giving up root (issue 16): ``todoku serve`` started as root with ``user = "nobody"`` binds a
port below 1024, then runs as nobody, and what it stores belongs to nobody; root on a public
address without ``user``, or a data directory that belongs to someone else, is one line and exit
status 2.

These need root (CI runs as root) and are skipped without it; the server must also be loadable
by nobody from this checkout (as in test_startup.py).
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import todoku
from tests.conftest import TodokuServer
from todoku.store.blobs import INLINE_LIMIT

NOBODY = 65534


def as_nobody(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to check what nobody can read")
    return subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
        check=False, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


def interpreter_for_nobody() -> tuple[list[str], dict[str, str]]:
    """A Python (and environment) that still works once the server has become nobody.

    The server starts as root but keeps importing lazily after the switch, so its standard
    library must be readable by nobody. A Python installed under /root (pyenv) is not: then the
    system's Python of the same version runs it, with this checkout's packages on its path."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if as_nobody("test", "-r", str(stdlib / "os.py")).returncode == 0:
        candidates = [sys.executable]
    else:
        candidates = [f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    env = dict(os.environ)
    source = str(Path(todoku.__file__).parent.parent)  # src/, as the editable install has it
    env["PYTHONPATH"] = os.pathsep.join([source, *(p for p in sys.path if "-packages" in p)])
    for python in candidates:
        probe = as_nobody(python, "-c", "import todoku.cli.main, cryptography, uvloop", env=env)
        if Path(python).exists() and probe.returncode == 0:
            return [python], env
        reason = probe.stderr.strip()[-200:]
    pytest.skip(f"no Python that nobody can run todoku with ({stdlib} unreadable?): {reason}")


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A directory nobody can read (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the server is started as root and must switch to nobody")
    root = Path(tempfile.mkdtemp(prefix="todoku-user-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_privileged_port() -> int:
    for port in range(1023, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


def write(root: Path, listen: str, **top: str) -> Path:
    lines = [f'{key} = "{value}"' for key, value in top.items()]
    path = root / "todoku.toml"
    path.write_text(
        'hostname = "mx.example.test"\ndomains = ["example.test"]\ndata_dir = "./data"\n'
        + "\n".join(lines)
        + f'\n[listen]\nsmtp = "{listen}"\n[dns]\nnameservers = ["127.0.0.1:1"]\n'
    )
    path.chmod(0o644)
    return path


def serve_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "todoku", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def status_ids(pid: int) -> dict[str, list[str]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid", "Groups"):
            fields[name] = value.split()
    return fields


def start(server: TodokuServer, python: list[str], env: dict[str, str]) -> None:
    """``TodokuServer.start`` with another interpreter: wait for run/listeners.json."""
    listeners = server.data_dir / "run" / "listeners.json"
    server.log_path = server.root / "server.log"
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            [*python, "-m", "todoku", "serve", "--config", str(server.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 20
    while not listeners.exists():
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"todoku serve did not start: {server.log()}")
        time.sleep(0.05)
    data = json.loads(listeners.read_text())
    server.ports = {k: v[1] for k, v in data.items() if k != "pid"}


def test_binds_as_root_then_runs_as_nobody(shared_root: Path) -> None:
    python, env = interpreter_for_nobody()
    port = free_privileged_port()
    config = write(shared_root, f"127.0.0.1:{port}", user="nobody")
    server = TodokuServer(root=shared_root, config_path=config, data_dir=shared_root / "data")
    # As an administrator would: the user is added as root, then the directory given to nobody.
    server.add_user("u@example.test")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(server.data_dir)], check=True)
    start(server, python, env)
    try:
        assert server.ports["smtp"] == port
        assert server.process is not None
        ids = status_ids(server.process.pid)
        assert ids["Uid"] == [str(NOBODY)] * 4, ids  # real, effective, saved, file system
        assert ids["Gid"] == [str(NOBODY)] * 4, ids
        assert ids["Groups"] == [], ids
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
            client.ehlo("client.example")
            client.mail("a@remote.example")
            assert client.rcpt("u@example.test")[0] == 250
            # Past INLINE_LIMIT, so that it is kept as a file whose owner can be checked.
            body = b"Subject: as nobody\r\n\r\nhello\r\n"
            body += (b"x" * 78 + b"\r\n") * (INLINE_LIMIT // 80 + 1)
            assert client.data(body)[0] == 250
        messages = [p for p in (server.data_dir / "messages").rglob("*") if p.is_file()]
        assert messages, "the message was not stored in data/messages"
        created = [*messages, *(server.data_dir / "tls").iterdir()]
        assert {p.stat().st_uid for p in created} == {NOBODY}, [
            (p, p.stat().st_uid) for p in created
        ]
        assert "running as nobody (uid 65534, gid 65534)" in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_root_on_a_public_address_needs_user(shared_root: Path) -> None:
    result = serve_once(write(shared_root, "0.0.0.0:0"))
    line = one_line(result)
    assert line.startswith("todoku: configuration error: user: refusing to serve 0.0.0.0:0 as root")
    assert 'user = "todoku"' in line


def test_data_dir_of_another_user(shared_root: Path) -> None:
    (shared_root / "data").mkdir(mode=0o700)  # root's
    result = serve_once(write(shared_root, "127.0.0.1:0", user="nobody"))
    line = one_line(result)
    group = grp.getgrgid(NOBODY).gr_name
    assert f"belongs to root, not nobody; fix with: chown -R nobody:{group} " in line
    assert str(shared_root / "data") in line


def test_unknown_user(shared_root: Path) -> None:
    result = serve_once(write(shared_root, "127.0.0.1:0", user="no-such-account-x"))
    assert "user: no such account: no-such-account-x" in one_line(result)
