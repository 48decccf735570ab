"""Crash recovery: SIGKILL the coordinator mid-mission, resume, and nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_tui.store import models as m

from .helpers import branch_commits, copy_quickstart, git, hybrid, only_run_dir, read_store


def _final_tree(repo: Path, branch: str) -> str:
    return git(repo, "rev-parse", f"{branch}^{{tree}}").strip()


def _check_complete(repo: Path, run_dir: Path) -> str:
    """Every task done, one commit per task, no duplicate trailer; returns the final tree."""
    store, run = read_store(run_dir)
    try:
        tasks = {t.task_id: t for t in m.Task.select()}
        assert {t.task_id: t.status for t in tasks.values()} == {tid: "done" for tid in tasks}
        commits = branch_commits(repo, run.mission_branch)
        trailers = [c["task"] for c in commits]
        assert sorted(trailers) == sorted(tasks), trailers  # no task lost, none integrated twice
        assert m.IntegrationCommit.select().count() == len(tasks)
        assert m.FileLock.select().count() == 0
        assert m.Attempt.select().where(m.Attempt.outcome == "running").count() == 0
        return _final_tree(repo, run.mission_branch)
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference_tree(tmp_path_factory) -> str:
    """The final mission-branch tree of an uninterrupted quickstart run."""
    base = tmp_path_factory.mktemp("reference")
    mission = copy_quickstart(base / "quickstart")
    hybrid("run", str(mission), "--headless", "--json", "--agents", "4", "--runs-dir", str(base / "runs"),
           cwd=base, check_exit=0)
    return _check_complete(mission / "repo", only_run_dir(base / "runs"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_then_resume_loses_nothing(tmp_path: Path, reference_tree: str, seed: int):
    mission = copy_quickstart(tmp_path / "quickstart")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json", "--agents", "4",
         "--runs-dir", str(runs)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        # Wait until the run exists (first event), then kill at a random point of the mission.
        first = proc.stdout.readline()
        assert json.loads(first)["kind"]
        time.sleep(random.Random(seed).uniform(0.0, 3.5))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    run_dir = only_run_dir(runs)

    resumed = hybrid("resume", str(run_dir), "--headless", "--json", cwd=tmp_path, check_exit=0)
    assert all(isinstance(json.loads(line), dict) for line in resumed.stdout.splitlines())
    assert _check_complete(mission / "repo", run_dir) == reference_tree


def test_crash_between_commit_and_store_update_is_reconciled(tmp_path: Path):
    """A task whose trailer is on the branch but whose store row says otherwise is done on
    resume, with its IntegrationCommit row, and is not integrated a second time."""
    mission = copy_quickstart(tmp_path / "quickstart")
    runs = tmp_path / "runs"
    hybrid("run", str(mission), "--headless", "--json", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    run_dir = only_run_dir(runs)
    store, run = read_store(run_dir)
    try:
        before = branch_commits(mission / "repo", run.mission_branch)
        victim = before[-1]["task"]
        # What the store looks like if the coordinator died right after the commit.
        with store.write(run.id):
            m.IntegrationCommit.delete().where(m.IntegrationCommit.task_id == victim).execute()
            m.Task.update(status="integrating", commit_sha=None).where(m.Task.task_id == victim).execute()
            last = m.Attempt.select().where(m.Attempt.task_id == victim).order_by(m.Attempt.number.desc()).first()
            m.Attempt.update(outcome="running").where(m.Attempt.id == last.id).execute()
            m.Run.update(status="running", finished_at=None).where(m.Run.id == run.id).execute()
    finally:
        store.close()

    hybrid("resume", str(run_dir), "--headless", cwd=tmp_path, check_exit=0)

    _check_complete(mission / "repo", run_dir)
    after = branch_commits(mission / "repo", run.mission_branch)
    assert after == before  # nothing new was committed
    store, _ = read_store(run_dir)
    try:
        row = m.Task.get(m.Task.task_id == victim)
        assert row.commit_sha == before[-1]["sha"]
        assert m.IntegrationCommit.get(m.IntegrationCommit.task_id == victim).sha == before[-1]["sha"]
        assert m.Attempt.get(m.Attempt.id == last.id).outcome == "interrupted"
    finally:
        store.close()


def test_stale_index_lock_in_a_worktree_is_cleared_on_resume(tmp_path: Path):
    from hybrid_tui.workspace.tree import remove_stale_index_lock

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@e", "commit", "-qm", "init")
    git(repo, "worktree", "add", "-q", "-b", "w", str(tmp_path / "wt"))
    gitdir = Path(git(tmp_path / "wt", "rev-parse", "--absolute-git-dir").strip())
    (gitdir / "index.lock").write_text("")
    assert remove_stale_index_lock(tmp_path / "wt") is True
    assert not (gitdir / "index.lock").exists()
    git(tmp_path / "wt", "reset", "-q", "--hard")  # git works in the worktree again
