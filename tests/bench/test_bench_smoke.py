"""Smoke test of the benchmarks: ``python -m bench --quick`` runs every benchmark at a tiny
size in a real subprocess and writes its JSON. No timing is asserted (machines are noisy):
it proves each benchmark drives the real runtime, store, git and console to the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {"scheduling", "store", "integration", "console", "scaling", "makespan", "distributed"}


@pytest.mark.slow
def test_quick_bench_runs_every_benchmark_and_saves_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    figures = data["figures"]
    assert {f["bench"] for f in figures} == BENCHMARKS
    assert not data["details"]["failed"]
    for f in figures:
        assert f["value"] > 0, f
        assert f["verdict"] in {"met", "MISSED", "-"}
        if f["budget"] is not None:
            assert f["budget_text"], f  # every budget is printed as DESIGN.md states it
    # The table on stdout carries every figure with its verdict.
    for f in figures:
        assert f["name"] in proc.stdout
    # The runtime really ran the DAG: every task lifecycle and dependency edge was measured.
    sched = data["details"]["scheduling"]
    # (group commit: the ends and dispatches of one loop turn share a transaction, so fewer than one a task)
    assert sched["tasks"] == 300 and 0 < sched["store_transactions"] < 300
    assert len(sched["chain_latency_ms"]) == 49
    assert len(sched["fanout_latency_ms"]) == 63 and all(ms > 0 for ms in sched["fanout_latency_ms"])
    assert data["details"]["integration"]["rounds"] == 5
    assert data["details"]["console"]["memory"]["rows_shown"] == 500
    # Through a real Redis and two workers as in-process: every task done, every attempt timed.
    dist = data["details"]["distributed"]
    assert dist["done"] == {"in_process": dist["tasks"], "broker": dist["tasks"]}
    assert dist["attempts_timed"]["broker"] >= dist["tasks"]


def test_only_selects_one_benchmark(tmp_path):
    out = tmp_path / "store.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "store", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    assert {f["bench"] for f in figures} == {"store"}
    assert "transitions/s" in proc.stdout


def test_unknown_benchmark_is_refused():
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
