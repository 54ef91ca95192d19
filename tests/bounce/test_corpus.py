"""Accuracy over the labelled bounce corpus (shared/corpus/bounces), as bench/explain_accuracy.py
measures it. The floors are the levels reached so far, so a change that makes the analyzer worse
fails here; the issue's targets are printed alongside for the report."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces"))
BENCH = Path(__file__).resolve().parents[2] / "bench" / "explain_accuracy.py"

# Regression floors (measured minus a small margin) and the targets.
FLOORS = {"reason": 0.948, "recipient": 0.982, "status_real": 0.979}
TARGETS = {"reason": 0.95, "recipient": 0.98, "status_real": 0.95}


def test_accuracy_floors() -> None:
    if not (CORPUS / "dev-labels.jsonl").exists():
        pytest.skip("the bounce corpus is not on this machine")
    spec = importlib.util.spec_from_file_location("explain_accuracy", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.score(bench.load(CORPUS))
    assert figures["records"] > 500
    report = {k: f"{figures[k]:.1%} (target {TARGETS[k]:.0%})" for k in FLOORS}
    print("bounce corpus accuracy:", report)
    for key, floor in FLOORS.items():
        assert figures[key] >= floor, report


# Leave-one-family-out reason accuracy (each family classified without the phrases only it
# taught): what an MTA never seen would meet. 90.2% measured (dev 95.1%); the target is
# 90%. The floor leaves about four records of margin.
LOFO_REASON_FLOOR = 0.895
LOFO_REASON_TARGET = 0.90


def test_leave_one_family_out_floor() -> None:
    if not (CORPUS / "dev-labels.jsonl").exists():
        pytest.skip("the bounce corpus is not on this machine")
    spec = importlib.util.spec_from_file_location("explain_accuracy", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.score(bench.load(CORPUS), leave_family_out=True)
    report = f"LOFO reason {figures['reason']:.1%} (target {LOFO_REASON_TARGET:.0%})"
    print(report)
    assert figures["reason"] >= LOFO_REASON_FLOOR, report
