"""The crash matrix: SIGKILL the coordinator (a real ``hybrid-tui run`` process) at each step
of a task's life and during planning, check the store/branch really were caught at that step,
then ``resume`` and check the end state equals that of an uninterrupted run.

The kill is exact, not timed: ``HYBRID_TUI_CRASH_AT=<point>:<task>`` (hybrid_tui.runtime.faults)
makes the coordinator SIGKILL itself when it reaches that point. tests/runtime/test_recovery.py
kills at random moments of the quickstart mission; this file covers every named step once.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hybrid_tui.store import models as m

from .helpers import branch_commits, cli, end_state, explain, four_task_mission, only_run_dir, read_store

pytestmark = pytest.mark.slow

RUN_ARGS = ("--headless", "--json", "--agents", "2")
ALL_DONE = {"a": "done", "b": "done", "c": "done", "d": "done"}


def run_mission(tmp_path: Path, crash_at: str | None = None) -> tuple[Path, object]:
    mission = four_task_mission(tmp_path / "m")
    runs = tmp_path / "runs"
    env = {"HYBRID_TUI_CRASH_AT": crash_at} if crash_at else None
    proc = cli("run", str(mission), *RUN_ARGS, "--runs-dir", str(runs), cwd=tmp_path, env=env)
    return only_run_dir(runs), proc


def resume(run_dir: Path, tmp_path: Path, crash_at: str | None = None):
    env = {"HYBRID_TUI_CRASH_AT": crash_at} if crash_at else None
    return cli("resume", str(run_dir), "--headless", "--json", cwd=tmp_path, env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Trees of an uninterrupted run, and of the same run after rolling back task c."""
    base = tmp_path_factory.mktemp("reference")
    run_dir, proc = run_mission(base)
    assert proc.returncode == 0, explain(proc)
    done = end_state(run_dir)
    assert done["status"] == ALL_DONE
    assert done["outcomes"] == {t: ["succeeded"] for t in "abcd"} | {"plan:001-work": ["succeeded"]}
    assert cli("rollback", str(run_dir), "c", cwd=base).returncode == 0
    proc = resume(run_dir, base)
    assert proc.returncode == 0, explain(proc)
    rolled = end_state(run_dir)
    assert rolled["status"] == ALL_DONE | {"c": "rolled_back"}
    assert rolled["rollbacks"] == ["c"]
    return {"tree": done["tree"], "rolled_back_tree": rolled["tree"]}


def store_at_crash(run_dir: Path) -> dict:
    store, run = read_store(run_dir)
    try:
        return {
            "run_status": run.status,
            "task": {t.task_id: t.status for t in m.Task.select()},
            "running": sorted(a.task_id for a in m.Attempt.select().where(m.Attempt.outcome == "running")),
            "locks": {lock.path: lock.task_id for lock in m.FileLock.select()},
            "trailers": [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)],
        }
    finally:
        store.close()


# point -> (the crashed task's status in the store at the kill, is its commit already on the branch)
TASK_POINTS = {
    "dispatch": ("running", False),
    "implemented": ("running", False),
    "validation": ("validating", False),
    "integrated": ("integrating", True),
}


@pytest.mark.parametrize("point", list(TASK_POINTS))
def test_kill_at_each_step_of_a_task_then_resume_equals_an_uninterrupted_run(tmp_path: Path, reference: dict, point: str):
    run_dir, proc = run_mission(tmp_path, crash_at=f"{point}:b")
    assert proc.returncode == -signal.SIGKILL, explain(proc)

    crashed = store_at_crash(run_dir)
    status, committed = TASK_POINTS[point]
    assert crashed["task"]["b"] == status
    assert "b" in crashed["running"]  # its attempt row was still open
    assert crashed["locks"].get("b.txt") == "b"  # and it held its file's lock
    assert ("b" in crashed["trailers"]) is committed
    assert crashed["task"]["d"] == "pending"

    proc = resume(run_dir, tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert all(isinstance(json.loads(line), dict) for line in proc.stdout.splitlines())

    after = end_state(run_dir)
    assert after["status"] == ALL_DONE
    assert after["tree"] == reference["tree"]
    assert after["trailers"] == ["a", "b", "c", "d"]
    assert after["run_status"] == "finished"
    if committed:  # found on the branch at resume: done without a second attempt
        assert after["outcomes"]["b"] == ["interrupted"]
    else:  # the interrupted attempt did not count; the next one did the work
        assert after["outcomes"]["b"] == ["interrupted", "succeeded"]
    store, _ = read_store(run_dir)
    try:
        first = m.Attempt.get((m.Attempt.task_id == "b") & (m.Attempt.number == 1))
        assert first.failure_type == "interrupted"
        assert "coordinator restarted" in first.failure_message
    finally:
        store.close()


def test_kill_during_planning_then_resume_plans_again_and_finishes(tmp_path: Path, reference: dict):
    run_dir, proc = run_mission(tmp_path, crash_at="planning:001-work")
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    crashed = store_at_crash(run_dir)
    assert crashed["run_status"] == "planning"
    assert crashed["running"] == ["plan:001-work"]
    assert set(crashed["task"].values()) <= {"pending", "ready"} and crashed["trailers"] == []

    proc = resume(run_dir, tmp_path)
    assert proc.returncode == 0, explain(proc)
    after = end_state(run_dir)
    assert after["status"] == ALL_DONE
    assert after["tree"] == reference["tree"]
    assert after["outcomes"] == {"plan:001-work": ["interrupted", "succeeded"]} | {t: ["succeeded"] for t in "abcd"}


def test_kill_during_rollback_then_resume_records_the_revert_once(tmp_path: Path, reference: dict):
    run_dir, proc = run_mission(tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert cli("rollback", str(run_dir), "c", cwd=tmp_path).returncode == 0

    proc = resume(run_dir, tmp_path, crash_at="rollback:c")
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    crashed = store_at_crash(run_dir)
    assert crashed["task"]["c"] == "done"  # the store was not told yet ...
    store, run = read_store(run_dir)
    try:  # ... but the revert is on the branch
        reverts = [c for c in branch_commits(Path(run.repo_path), run.mission_branch) if c["rollback"]]
        assert [c["rollback"] for c in reverts] == ["c"]
    finally:
        store.close()

    proc = resume(run_dir, tmp_path)
    assert proc.returncode == 0, explain(proc)
    after = end_state(run_dir)
    assert after["status"] == ALL_DONE | {"c": "rolled_back"}
    assert after["tree"] == reference["rolled_back_tree"]
    assert after["rollbacks"] == ["c"]  # reverted once, not twice
    store, _ = read_store(run_dir)
    try:
        row = m.IntegrationCommit.get(m.IntegrationCommit.task_id == "c")
        assert row.reverted_by == reverts[0]["sha"]
        control = m.Control.get(m.Control.command == "rollback")
        assert control.status != "pending"  # settled, not left for a third coordinator
    finally:
        store.close()
