"""The approval gate on a real run of web-18 (a ``hybrid-tui run`` process, git on): with
``[policies] approve = ["CRITICAL"]`` its CRITICAL task waits, unstarted, while the rest
of the mission runs; ``hybrid-tui approve`` releases it and the run ends as an ungated one
would. ``reject`` fails it with the reason and blocks its dependent."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.store.db import StoreError

from .helpers import only_run_dir, read_store

pytestmark = pytest.mark.slow

WEB_18 = Path(__file__).resolve().parents[2] / "sample_missions" / "web-18"
CRITICAL = "sec-knowledge-path"  # the mission's one CRITICAL task
ITS_DEPENDENT = "perf-knowledge-cache"
STILL = {"pending", "awaiting_approval", "failed", "done", "blocked", "cancelled", "rolled_back"}


def gated_web_18(tmp_path: Path) -> Path:
    mission = tmp_path / "web-18"
    shutil.copytree(WEB_18, mission)
    with (mission / "mission.toml").open("a") as toml:
        toml.write('approve = ["CRITICAL"]\n')  # the file ends in its [policies] table
    return mission


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def statuses(run_dir: Path) -> dict[str, str]:
    store, _ = read_store(run_dir)
    try:
        return {t.task_id: t.status for t in m.Task.select()}
    finally:
        store.close()


def wait_until_only_the_gate_holds_work(runs: Path, proc: subprocess.Popen) -> tuple[Path, dict[str, str]]:
    deadline = time.monotonic() + 300  # a safety net for a loaded machine, not a timing assertion
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if runs.is_dir() and any(runs.iterdir()):
            run_dir = only_run_dir(runs)
            try:
                seen = statuses(run_dir)
            except StoreError:  # the coordinator is still creating it
                seen = {}
            if seen.get(CRITICAL) == "awaiting_approval" and set(seen.values()) <= STILL:
                return run_dir, seen
        time.sleep(0.05)
    raise AssertionError("the run never settled with only the gated task held")


@pytest.fixture
def running(tmp_path: Path):
    mission = gated_web_18(tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json",
                             "--runs-dir", str(runs)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield runs, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_the_critical_task_waits_unstarted_while_the_rest_runs_until_approved(running, tmp_path: Path):
    runs, proc = running
    run_dir, held = wait_until_only_the_gate_holds_work(runs, proc)
    assert held[ITS_DEPENDENT] == "pending"
    assert sum(s == "done" for s in held.values()) >= 12  # the rest of the mission ran meanwhile
    store, _ = read_store(run_dir)
    try:
        assert m.Attempt.select().where(m.Attempt.task_id == CRITICAL).count() == 0
        row = m.Task.get(m.Task.task_id == CRITICAL)
        assert "awaiting approval" in row.attention_reason  # the attention view says why it waits
    finally:
        store.close()

    unknown = cli("approve", str(run_dir), "no-such-task", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "'no-such-task'" in unknown.stderr
    approved = cli("approve", str(run_dir), CRITICAL, cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    out, _ = proc.communicate(timeout=120)
    final = statuses(run_dir)
    assert final[CRITICAL] == "done" and final[ITS_DEPENDENT] == "done"
    assert "awaiting_approval -> ready: approved by operator" in out


def test_reject_fails_the_task_with_the_reason_and_blocks_its_dependent(running, tmp_path: Path):
    runs, proc = running
    run_dir, _ = wait_until_only_the_gate_holds_work(runs, proc)
    rejected = cli("reject", str(run_dir), CRITICAL, "--reason", "needs a security review first", cwd=tmp_path)
    assert rejected.returncode == 0, rejected.stderr
    proc.communicate(timeout=120)
    assert proc.returncode == 1  # a failed task: the mission did not all land
    store, _ = read_store(run_dir)
    try:
        row = m.Task.get(m.Task.task_id == CRITICAL)
        assert (row.status, row.failure_type) == ("failed", "rejected")
        assert row.attention_reason == "rejected by operator: needs a security review first"
        assert m.Task.get(m.Task.task_id == ITS_DEPENDENT).status == "blocked"
    finally:
        store.close()


def test_validate_refuses_an_approve_entry_that_names_nothing(tmp_path: Path):
    mission = gated_web_18(tmp_path)
    assert cli("validate", str(mission), cwd=tmp_path).returncode == 0
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text().replace('approve = ["CRITICAL"]', 'approve = ["CRITICLA"]'))
    proc = cli("validate", str(mission), cwd=tmp_path)
    assert proc.returncode == 2
    assert "policies.approve[0]" in proc.stdout + proc.stderr and "'CRITICLA'" in proc.stdout + proc.stderr
