"""Crash safety of a batched attempt (``[policies.batch]``): SIGKILL the coordinator (a real
``hybrid-tui run`` process) at each step of a three-task batch, through the crash points of
hybrid_tui.runtime.faults, then ``resume``: every task is integrated exactly once (one
``Hybrid-Task`` trailer each, the store reconciled from the branch) and the branch's tree is
that of an uninterrupted run. Tasks that were interrupted run again, alone."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hybrid_tui.store import models as m

from .helpers import branch_commits, cli, end_state, explain, only_run_dir, py, read_store, task, write_mission

pytestmark = pytest.mark.slow

RUN_ARGS = ("--headless", "--json", "--agents", "1")
ALL_DONE = {"a": "done", "b": "done", "c": "done"}
BATCH = "\n[policies.batch]\nmax_tasks = 3\n"


def batch_mission(root: Path) -> Path:
    check = "import pathlib; assert pathlib.Path('%s.txt').read_text() == '%s\\n'"
    return write_mission(root, [task(n, checks=[py(check % (n, n))]) for n in "abc"], mission=BATCH)


def run_mission(tmp_path: Path, crash_at: str | None = None):
    mission = batch_mission(tmp_path / "m")
    runs = tmp_path / "runs"
    env = {"HYBRID_TUI_CRASH_AT": crash_at} if crash_at else None
    proc = cli("run", str(mission), *RUN_ARGS, "--runs-dir", str(runs), cwd=tmp_path, env=env)
    return only_run_dir(runs), proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("reference")
    run_dir, proc = run_mission(base)
    assert proc.returncode == 0, explain(proc)
    done = end_state(run_dir)
    assert done["status"] == ALL_DONE
    store, _ = read_store(run_dir)
    try:  # one session for the three tasks
        assert {a.batch for a in m.Attempt.select().where(m.Attempt.phase != "planning")} == {"a#1"}
    finally:
        store.close()
    return done


# point:task -> the sets of tasks whose commit can be on the branch at the kill
POINTS = {
    "dispatch:b": [set()],
    "implemented:a": [set()],
    # a's integration is queued before b's validation starts, and runs beside it: on a busy
    # machine b's validation can start before a's commit lands.
    "validation:b": [{"a"}, set()],
    "integrated:a": [{"a"}],
    "integrated:b": [{"a", "b"}],
    "integrated:c": [{"a", "b", "c"}],
}


@pytest.mark.parametrize("point", list(POINTS))
def test_kill_mid_batch_then_resume_integrates_each_task_exactly_once(tmp_path: Path, reference: dict, point: str):
    run_dir, proc = run_mission(tmp_path, crash_at=point)
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    store, run = read_store(run_dir)
    try:
        on_branch = {c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)}
        batched = {a.task_id for a in m.Attempt.select().where(m.Attempt.batch == "a#1")}
    finally:
        store.close()
    assert batched == {"a", "b", "c"}  # the kill came mid batch
    assert on_branch in POINTS[point]

    proc = cli("resume", str(run_dir), "--headless", "--json", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    after = end_state(run_dir)  # no trailer twice, store and branch agree, no lock or running attempt left
    assert after["status"] == ALL_DONE
    assert after["trailers"] == ["a", "b", "c"]
    assert after["tree"] == reference["tree"]
    for tid in "abc":
        outcomes = after["outcomes"][tid]
        if tid in on_branch:
            # Its commit was on the branch at the kill: stored as done before it, or reconciled
            # from the branch at resume; never attempted again.
            assert outcomes in (["succeeded"], ["interrupted"]), (tid, outcomes)
        else:  # the interrupted attempt did not count; the next one, alone, did the work
            assert outcomes == ["interrupted", "succeeded"], (tid, outcomes)
    store, _ = read_store(run_dir)
    try:  # what ran again after the crash ran alone
        again = list(m.Attempt.select().where((m.Attempt.number > 1) & (m.Attempt.phase != "planning")))
        assert len(again) == 3 - len(on_branch)
        assert all(a.batch == "" for a in again)
    finally:
        store.close()
