"""contrib/todoku.service: ``systemd-analyze verify`` accepts it without a single warning, and it
has the settings the README's production section relies on (issue 16).

verify checks that ExecStart names an executable file, which /opt/todoku/bin/todoku is not on a
test machine: the copy verified here differs from the shipped unit in that one path only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "contrib" / "todoku.service"
INSTALLED = "/opt/todoku/bin/todoku"


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): unit not verified")
    stub = tmp_path / "todoku"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    assert INSTALLED in text
    unit = tmp_path / "todoku.service"
    unit.write_text(text.replace(INSTALLED, str(stub)))
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_unit_verifies_without_warnings(tmp_path: Path) -> None:
    result = verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_verify_would_catch_a_misspelt_setting(tmp_path: Path) -> None:
    # What the test above relies on: systemd only warns (exit 0) about an unknown key.
    text = UNIT.read_text().replace("ProtectSystem=", "ProtectSytem=")
    result = verify(tmp_path, text)
    assert "Unknown key 'ProtectSytem'" in result.stderr


def test_the_unit_runs_unprivileged_hardened_and_reloads_with_sighup() -> None:
    found = settings(UNIT.read_text())
    assert found["User"] == ["todoku"]
    assert found["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert found["ExecStart"][0].startswith(f"{INSTALLED} serve --config ")
    for key, value in {
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/todoku",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "Restart": "on-failure",
    }.items():
        assert found[key] == [value], key
    # SIGHUP reloads the configuration and certificates (tests/net/test_reload.py).
    assert found["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
