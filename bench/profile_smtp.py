#!/usr/bin/env python3
"""Profile ``todoku serve`` with py-spy while smtp-source loads it (the evidence behind issue 7).

    python bench/profile_smtp.py [--messages 2000] [--size 1024] [--sessions 20] [--idle]

Writes ``bench/results/profile-<size>-<timestamp>.txt``: the hottest functions by own time and by
total time (from py-spy's collapsed stacks, all threads), and the raw collapsed stacks beside it.
Needs ``py-spy`` in the virtualenv (``.venv/bin/pip install py-spy``) and the peers' smtp-source.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # the harness next to this file

PY_SPY = bench.REPO / ".venv" / "bin" / "py-spy"


def summarize(collapsed: Path, top: int) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    out = [f"samples: {samples}", "", "## own time", ""]
    out += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out += ["", "## total time (the frame or anything it called)", ""]
    out += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in total.most_common(top)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--idle", action="store_true", help="include idle (waiting) samples")
    parser.add_argument(
        "--gil", action="store_true", help="only samples of the thread holding the GIL"
    )
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    if not PY_SPY.exists():
        sys.exit("profile: .venv/bin/py-spy missing (.venv/bin/pip install py-spy)")
    peers = bench.Peers()
    peers.ensure()
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S")
    raw = bench.RESULTS_DIR / f"profile-{args.size}-{stamp}.collapsed"
    workload = bench.SmtpWorkload("profile", args.sessions, args.messages, args.size)
    try:
        with bench.todoku_instance(bench.TODOKU_BASE) as server:
            assert server.process is not None
            argv = [str(PY_SPY), "record", "--pid", str(server.process.pid), "--format", "raw",
                    "--output", str(raw), "--threads", "--rate", str(args.rate), "--duration", "600"]  # fmt: skip
            if args.idle:
                argv.append("--idle")
            if args.gil:
                argv.append("--gil")
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1.0)
                elapsed = bench.smtp_source(workload, server.port)
            finally:
                spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
                spy.wait(60)
    finally:
        peers.stop()
    rate = args.messages / elapsed
    lines = [
        f"# py-spy, {args.messages} x {args.size} B, {args.sessions} sessions: {elapsed:.2f}s ({rate:.0f}/s)",
        "",
    ]
    lines += summarize(raw, args.top)
    report = raw.with_suffix(".txt")
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {report.relative_to(bench.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
