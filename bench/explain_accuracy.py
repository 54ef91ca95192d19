"""Accuracy and speed of the bounce analyzer over the labelled corpus (and Sisimai side by side).

    .venv/bin/python bench/explain_accuracy.py [--corpus DIR] [--sisimai] [--misses] [--no-lofo]

Two accuracy figures. The development figure classifies every email with everything the
analyzer knows. The leave-one-family-out (LOFO) figure classifies each family's emails (the
label's "module": an MTA or a mail service) without the phrases that only that family taught:
every phrase of todoku.bounce.knowledge declares the families it was seen in, or the
documentation it comes from; for family F the phrases seen in F alone and documented nowhere
are left out (classify.use_knowledge). It predicts what a bounce from an MTA never seen meets,
and is the figure to optimise.

Reason accuracy is scored per labelled record (recipient): the analyzer's record for the same
recipient (or, when none matches, the one at the same position). Status accuracy is reported on
all records and on the records whose label is a real RFC 3463 code (not one of Sisimai's made-up
X.0.9NN codes, which a bounce never carries).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from todoku.bounce.analyze import analyze_bytes

DEFAULT_CORPUS = Path("/work/shared/corpus/bounces")


def load(corpus: Path) -> list[tuple[dict[str, Any], bytes]]:
    out = []
    with open(corpus / "dev-labels.jsonl", encoding="utf-8") as labels:
        for line in labels:
            label = json.loads(line)
            path = corpus / label["file"]
            if path.exists():
                out.append((label, path.read_bytes()))
    return out


def score(
    items: list[tuple[dict[str, Any], bytes]],
    show_misses: bool = False,
    leave_family_out: bool = False,
) -> dict[str, float]:
    """Accuracy per labelled record; ``leave_family_out``: each email classified without the
    phrases only its own family taught."""
    from todoku.bounce import classify

    n = reason_ok = rcpt_ok = status_ok = real_n = real_ok = 0
    if leave_family_out:  # one family at a time: the tables are rebuilt once per family
        items = sorted(items, key=lambda item: item[0]["module"])
    current = None
    for label, data in items:
        if leave_family_out and label["module"] != current:
            current = label["module"]
            classify.use_knowledge(exclude_family=current)
        results = analyze_bytes(data)
        by_recipient = {r.recipient: r for r in results}
        for index, record in enumerate(label["records"]):
            n += 1
            expected_rcpt = (record["recipient"] or "").lower()
            got = by_recipient.get(expected_rcpt)
            if got is None and results:
                got = results[min(index, len(results) - 1)]
            got_reason = got.reason if got else "(none)"
            got_rcpt = got.recipient if got else ""
            got_status = got.status if got else ""
            ok_reason = got_reason == record["reason"]
            ok_rcpt = got_rcpt == expected_rcpt
            ok_status = got_status == record["deliverystatus"]
            reason_ok += ok_reason
            rcpt_ok += ok_rcpt
            status_ok += ok_status
            if not record["status_is_sisimai_pseudo"]:
                real_n += 1
                real_ok += ok_status
            if show_misses and not (
                ok_reason and ok_rcpt and (ok_status or record["status_is_sisimai_pseudo"])
            ):
                print(
                    ("LOFO " if leave_family_out else "")
                    + f"{label['file']}#{index + 1}: "
                    + ("" if ok_reason else f"reason {got_reason} != {record['reason']}; ")
                    + ("" if ok_rcpt else f"rcpt {got_rcpt} != {expected_rcpt}; ")
                    + (
                        ""
                        if ok_status or record["status_is_sisimai_pseudo"]
                        else f"status {got_status} != {record['deliverystatus']}; "
                    )
                    + (f"diag={got.diagnostic[:110]!r}" if got else "")
                )
    if leave_family_out:
        classify.use_knowledge()
    return {
        "records": n,
        "reason": reason_ok / n,
        "recipient": rcpt_ok / n,
        "status_all": status_ok / n,
        "status_real": real_ok / real_n if real_n else 0.0,
    }


def speed(items: list[tuple[dict[str, Any], bytes]], rounds: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for _label, data in items:
            analyze_bytes(data)
    return rounds * len(items) / (time.perf_counter() - start)


SISIMAI_SCRIPT = r"""
use strict; use Sisimai; use Time::HiRes qw(time);
my $dir = shift; my $t0 = time;
my $v = Sisimai->make($dir, 'delivered' => 1, 'vacation' => 1) || [];
my $t = time - $t0; printf "%d %.6f\n", scalar(@$v), $t;
"""


def _child_run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process: CPU time is the fair figure on a shared,
    loaded machine, where wall time mostly measures the other tenants."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compile_bytecode() -> None:
    """Write the todoku package's bytecode (__pycache__, ignored by git) before timing, as
    ``pip install`` does and as any run without PYTHONDONTWRITEBYTECODE does on its own: a
    user's ``todoku explain`` does not compile its source on every start. (This machine sets
    PYTHONDONTWRITEBYTECODE, which made every timed run compile all of todoku.bounce from
    source, about 45 ms of CPU, a measurement artefact.) Sisimai, in Perl, has no such cache:
    Perl compiles its modules on every run whatever one does."""
    import compileall

    import todoku

    compileall.compile_dir(Path(todoku.__file__).parent, quiet=1)


def whole_runs(
    items: list[tuple[dict[str, Any], bytes]], rounds: int = 5
) -> dict[str, tuple[float, float]]:
    """Messages/s (by wall time, by CPU time; medians of ``rounds``) of complete runs over the
    same files as one Maildir folder: Debian's Sisimai (``Sisimai->make``), ``todoku explain
    --json``, and the analyzer alone (``python -m todoku.bounce``, without the rest of the CLI).

    The programs take turns within each round, so a change in the machine's load (it is shared)
    falls on all of them alike; the median keeps one disturbed round from deciding the figure.
    """
    runs: dict[str, tuple[float, float]] = {}
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        maildir = Path(tmp) / "cur"
        maildir.mkdir()
        for i, (_label, data) in enumerate(items):
            (maildir / f"{i}.eml").write_bytes(data)
        commands = {
            "todoku explain": [sys.executable, "-m", "todoku", "explain", "--json", str(maildir)],
            "python -m todoku.bounce": [
                sys.executable,
                "-m",
                "todoku.bounce",
                "--json",
                str(maildir),
            ],
        }
        if (
            shutil.which("perl")
            and subprocess.run(
                ["perl", "-MSisimai", "-e", "1"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            commands["Sisimai"] = ["perl", "-e", SISIMAI_SCRIPT, str(maildir)]
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                wall, cpu = _child_run(command)
                walls[name].append(wall)
                cpus[name].append(cpu)
        for name in commands:
            runs[name] = (
                len(items) / statistics.median(walls[name]),
                len(items) / statistics.median(cpus[name]),
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--misses", action="store_true", help="print every record not matched")
    parser.add_argument("--sisimai", action="store_true", help="also time Debian's Sisimai")
    parser.add_argument("--rounds", type=int, default=5, help="whole runs per program (median)")
    parser.add_argument(
        "--no-lofo", action="store_true", help="skip the leave-one-family-out figures"
    )
    args = parser.parse_args()
    items = load(args.corpus)
    passes = [("development", False)] + ([] if args.no_lofo else [("leave-one-family-out", True)])
    for name, lofo in passes:
        figures = score(items, args.misses, leave_family_out=lofo)
        print(
            f"{name:<21} records {figures['records']}  reason {figures['reason']:.1%}  "
            f"recipient {figures['recipient']:.1%}  "
            f"status(real RFC 3463) {figures['status_real']:.1%}  "
            f"status(all) {figures['status_all']:.1%}"
        )
    print(f"analyzer in-process: {speed(items):.0f} messages/s over {len(items)} messages")
    if args.sisimai:
        runs = whole_runs(items, args.rounds)
        print(
            "whole runs: todoku's bytecode written first (as an installed package has it); "
            f"medians of {args.rounds}; load average {os.getloadavg()[0]:.1f} at the end"
        )
        if "Sisimai" not in runs:
            print("Sisimai: not installed (apt-get install -y libsisimai-perl)")
        for name, (wall, cpu) in runs.items():
            line = (
                f"whole run {name:<24} {wall:7.0f} messages/s (wall)  {cpu:7.0f} messages/s (CPU)"
            )
            if "Sisimai" in runs and name != "Sisimai":
                line += (
                    f"   vs Sisimai: {wall / runs['Sisimai'][0]:.1f}x wall, "
                    f"{cpu / runs['Sisimai'][1]:.1f}x CPU"
                )
            print(line)


if __name__ == "__main__":
    main()
