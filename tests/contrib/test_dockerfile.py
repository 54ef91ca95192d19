"""contrib/Dockerfile cannot be built here (no Docker where the tests run): what can be checked
without building it is checked, the things a broken image would get wrong silently. The server
does not run as root (USER after the last RUN, not root), so it can only bind ports above 1024:
every EXPOSEd port is one. The data directory is a VOLUME. CMD is ``todoku serve``. Every COPY
source exists in the repository (a renamed file would break the build)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "contrib" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def test_runs_todoku_serve_as_a_user_that_is_not_root_with_a_data_volume() -> None:
    steps = instructions()
    words = [w for w, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    user_at = max(i for i, w in enumerate(words) if w == "USER")
    assert user_at > max(i for i, w in enumerate(words) if w == "RUN")
    assert steps[user_at][1] not in ("root", "0", "0:0")
    [volume] = [json.loads(rest) for w, rest in steps if w == "VOLUME"]
    [workdir] = [rest for w, rest in steps if w == "WORKDIR"]
    assert workdir in volume
    assert f"install -d -o {steps[user_at][1]}" in dict(steps)["RUN"]  # the volume is its own
    [cmd] = [json.loads(rest) for w, rest in steps if w == "CMD"]
    assert cmd == ["todoku", "serve"]


def test_exposes_only_ports_a_non_root_process_can_bind() -> None:
    ports = [int(p) for w, rest in instructions() if w == "EXPOSE" for p in rest.split()]
    assert len(ports) == 5 and all(p > 1024 for p in ports)


def test_copies_only_files_that_exist() -> None:
    for word, rest in instructions():
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
