"""Shared fixtures: a real todoku server process on loopback with free ports.

``todoku_server`` starts ``python -m todoku serve`` with every listener on port 0 and reads the
bound ports from ``<data_dir>/run/listeners.json``. Every process started here is stopped at the
end of the test (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "correct horse battery"
SERVICES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")


def require_tool(name: str) -> str:
    """Skip (with a clear message) when a Debian client program is not installed locally."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}); .ci/run installs it")
    return path


def client_tls_context() -> ssl.SSLContext:
    """Our test server uses its self-signed certificate: clients in tests do not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class TodokuServer:
    root: Path
    config_path: Path
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    def cli(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: PLW1510 -- check= is this method's own argument
            [sys.executable, "-m", "todoku", *args, "--config", str(self.config_path)],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"todoku {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.cli("user", "add", address, "--password-stdin", input=password + "\n")

    def start(self, timeout: float = 20.0) -> None:
        listeners = self.data_dir / "run" / "listeners.json"
        if listeners.exists():
            listeners.unlink()
        self.log_path = self.root / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "todoku", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"todoku serve exited with {self.process.returncode}: {self.log()}"
                )
            if listeners.exists():
                data = json.loads(listeners.read_text())
                self.ports = {k: v[1] for k, v in data.items() if k in SERVICES}
                return
            time.sleep(0.05)
        raise AssertionError(f"todoku serve did not start in {timeout}s: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )


def write_config(
    root: Path, extra: str = "", services: tuple[str, ...] = SERVICES, **top: Any
) -> Path:
    listen = "\n".join(f'{s} = "127.0.0.1:0"' for s in services)
    settings = {
        "hostname": "mx.example.test",
        "domains": ["example.test", "example.org"],
        "data_dir": "./data",
    } | top
    lines = []
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    text = "\n".join(lines) + f'\n\n[listen]\n{listen}\n\n[auth]\nfail_delay = "0.05s"\n{extra}\n'
    if "[dns]" not in extra:
        # The outbound queue runs in every server: unless a test sets up DNS, point it at a
        # closed loopback port, so mail for other domains stays queued (a temporary DNS
        # failure) instead of reaching the machine's resolver.
        text += '\n[dns]\nnameservers = ["127.0.0.1:1"]\n'
    path = root / "todoku.toml"
    path.write_text(text)
    return path


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., TodokuServer]]:
    """Factory: ``make_server(extra_toml="", services=(...), **top_level_keys)`` → a started server."""
    servers: list[TodokuServer] = []

    def factory(
        extra: str = "", services: tuple[str, ...] = SERVICES, start: bool = True, **top: Any
    ) -> TodokuServer:
        root = tmp_path / f"server{len(servers)}"
        root.mkdir()
        config_path = write_config(root, extra, services, **top)
        server = TodokuServer(root=root, config_path=config_path, data_dir=root / "data")
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., TodokuServer]) -> TodokuServer:
    """A started server with the user alice@example.test (password ``PASSWORD``)."""
    srv = make_server(start=False)
    srv.add_user("alice@example.test")
    srv.start()
    return srv


os.environ.setdefault("PYTHONUNBUFFERED", "1")
