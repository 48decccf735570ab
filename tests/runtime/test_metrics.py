"""Prometheus metrics: scraped from a headless run's endpoint (``--metrics-port``) while a task
is validating, every value equals the store; a bad port is a one-line error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anyio
import prometheus_client
import pytest

from hybrid_tui.app.launch import start_run
from hybrid_tui.views.metrics import MetricsServer, parse_metrics
from hybrid_tui.store import models as m
from hybrid_tui.store.db import open_store
from hybrid_tui.store.runs import run_store_location

from .helpers import hybrid, py, task, write_mission


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse_metrics(response.read().decode())


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def expected_from_store(run_id: str) -> dict[str, dict]:
    """The numbers a user would compute from the store by hand."""
    tasks: dict[str, int] = {}
    for t in m.Task.select().where(m.Task.run == run_id):
        tasks[t.status] = tasks.get(t.status, 0) + 1
    attempts: dict[tuple[str, str, str], int] = {}
    spend: dict[str, float] = {}
    for a in m.Attempt.select().where(m.Attempt.run == run_id):
        key = (a.phase, a.outcome, a.failure_type or "")
        attempts[key] = attempts.get(key, 0) + 1
        spend[a.phase] = spend.get(a.phase, 0.0) + a.cost_usd
    agents = {a.agent_id: a.state for a in m.Agent.select().where(m.Agent.run == run_id)}
    return {"tasks": tasks, "attempts": attempts, "spend": spend, "agents": agents}


def check_against_store(metrics: dict, run_id: str) -> None:
    exp = expected_from_store(run_id)
    run = m.Run.get_by_id(run_id)
    for state in ("pending", "ready", "running", "validating", "integrating", "done", "failed"):
        assert value(metrics, "hybrid_tasks", run=run_id, state=state) == exp["tasks"].get(state, 0), state
    assert value(metrics, "hybrid_queue_depth", run=run_id) == exp["tasks"].get("ready", 0)
    for (phase, outcome, failure), n in exp["attempts"].items():
        assert value(metrics, "hybrid_attempts_total", run=run_id, phase=phase, outcome=outcome, failure_type=failure) == n
    scraped_attempts = sum(v for (name, _), v in metrics.items() if name == "hybrid_attempts_total")
    assert scraped_attempts == sum(exp["attempts"].values())
    for phase, dollars in exp["spend"].items():
        assert value(metrics, "hybrid_spend_dollars_total", run=run_id, phase=phase) == pytest.approx(dollars)
    assert value(metrics, "hybrid_budget_dollars", run=run_id, budget="mission") == run.mission_budget_usd
    assert value(metrics, "hybrid_budget_dollars", run=run_id, budget="retry") == run.retry_budget_usd
    live = {a: s for a, s in exp["agents"].items() if s != "retired"}
    busy = sum(1 for s in live.values() if s == "busy")
    for agent, state in live.items():
        assert value(metrics, "hybrid_agent_busy", run=run_id, agent=agent, role="implementer") == (state == "busy")
    assert value(metrics, "hybrid_agent_utilisation_ratio", run=run_id) == pytest.approx(busy / len(live) if live else 0)
    assert value(metrics, "hybrid_pool_target", run=run_id) == run.pool_target
    assert value(metrics, "hybrid_run_info", run=run_id, mission=run.mission_name, status=run.status,
                 backend=run.backend) == 1


def test_metrics_of_a_finished_run_equal_the_store_and_use_their_own_registry(tmp_path: Path):
    root = write_mission(tmp_path / "mission", [task("a"), task("b", deps=["a"]), task("c", deps=["a"])])
    store, run_id, c = start_run(root, tmp_path / "runs", agents=2)
    try:
        assert anyio.run(c.run) == 0
        server = MetricsServer(run_id, 0)
        try:
            metrics = scrape(server.url)
        finally:
            server.close()
        check_against_store(metrics, run_id)
        assert value(metrics, "hybrid_tasks", run=run_id, state="done") == 3
        # b and c each waited for a: two dependency -> dispatch latencies observed.
        assert value(metrics, "hybrid_scheduling_latency_seconds_count", run=run_id) == 2
        sample = m.ResourceSample.select().order_by(m.ResourceSample.ts.desc(), m.ResourceSample.id.desc()).first()
        assert value(metrics, "hybrid_memory_percent", run=run_id) == sample.memory_percent
        assert value(metrics, "hybrid_coordinator_rss_bytes", run=run_id) == sample.coordinator_rss_bytes
        # The global registry knows nothing of the run.
        assert prometheus_client.REGISTRY.get_sample_value("hybrid_queue_depth", {"run": run_id}) is None
    finally:
        store.close()


def test_scrape_during_a_headless_run_matches_the_store(tmp_path: Path):
    flag = tmp_path / "go"
    wait = py(f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)")
    root = write_mission(
        tmp_path / "mission",
        [task("a"), task("b", deps=["a"], checks=[wait], timeout=300), task("c", deps=["b"])],
        mission="\n[policies]\nsample_interval_seconds = 0.2\n",
    )
    runs = tmp_path / "runs"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybrid_tui", "run", str(root), "--headless", "--agents", "2", "--runs-dir", str(runs),
         "--metrics-port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 120  # hang guard only
        run_dir = None
        while run_dir is None or run_store_location(run_dir) is None:  # its state.db, or store.url
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            found = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
            run_dir = found[0] if found else None
            time.sleep(0.05)
        store = open_store(run_store_location(run_dir), create=False)
        try:
            while m.Run.select().first() is None:  # the store is there before the run's row is committed
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            run_id = m.Run.select().first().id
            # b validates (waiting for the flag) and its validation tree shows up in a sample.
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                b = m.Task.get((m.Task.run == run_id) & (m.Task.task_id == "b"))
                sample = m.ResourceSample.select().order_by(m.ResourceSample.ts.desc()).first()
                if b.status == "validating" and sample is not None and "b" in json.loads(sample.tasks_json):
                    break
                time.sleep(0.05)
            # A scrape between two equal store versions must equal the store exactly.
            while True:
                assert time.monotonic() < deadline
                before = m.Run.get_by_id(run_id).version
                try:
                    metrics = scrape(url)
                except OSError:
                    time.sleep(0.05)
                    continue
                if m.Run.get_by_id(run_id).version == before:
                    break
            check_against_store(metrics, run_id)
            assert value(metrics, "hybrid_tasks", run=run_id, state="validating") == 1
            assert value(metrics, "hybrid_tasks", run=run_id, state="done") == 1
            assert value(metrics, "hybrid_scheduling_latency_seconds_count", run=run_id) == 1  # a done -> b running
            ts = value(metrics, "hybrid_resource_sample_timestamp_seconds", run=run_id)
            sample = m.ResourceSample.get((m.ResourceSample.run == run_id) & (m.ResourceSample.ts == ts))
            assert value(metrics, "hybrid_disk_percent", run=run_id, volume="run") == sample.disk_percent
            assert value(metrics, "hybrid_validation_rss_bytes", run=run_id, task="b") == json.loads(sample.tasks_json)["b"]["rss"] > 0
        finally:
            store.close()
        flag.write_text("go")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"metrics on {url}" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path):
    root = write_mission(tmp_path / "mission", [task("a")])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = hybrid("run", str(root), "--headless", "--runs-dir", str(tmp_path / "runs"), "--metrics-port", str(port),
                      cwd=tmp_path)
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"hybrid-tui: error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}")


def test_the_grafana_dashboard_only_uses_metrics_the_endpoint_serves(tmp_path: Path):
    import re

    from prometheus_client.parser import text_string_to_metric_families

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "grafana" / "hybrid-tui-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bhybrid_[a-z_]+", expr)}
    root = write_mission(tmp_path / "mission", [task("a")])
    store, run_id, c = start_run(root, tmp_path / "runs")
    try:
        assert anyio.run(c.run) == 0
        server = MetricsServer(run_id, 0)
        try:
            with urllib.request.urlopen(server.url, timeout=10) as response:
                text = response.read().decode()
        finally:
            server.close()
    finally:
        store.close()
    served = set()
    for family in text_string_to_metric_families(text):
        served.add(family.name)
        served |= {s.name for s in family.samples}
    assert used and used <= served, used - served
