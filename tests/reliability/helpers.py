"""Helpers for the reliability suite: the CLI as a real subprocess with a chosen environment,
small missions on real git repositories (built with tests/runtime/helpers.py), and one check
of a run's end state that every crash and fault test shares."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from runtime.helpers import branch_commits, drive, git, only_run_dir, py, read_store, task, write_mission  # noqa: F401

from hybrid_tui.store import models as m

SECRET = "sk-ant-test-SECRET-4242"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180,
        drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m hybrid_tui ARGS`` with ``env`` laid over this environment (``drop`` removed)."""
    full = {**os.environ, **(env or {})}
    for name in ("HYBRID_TUI_CRASH_AT", *drop):
        if name not in (env or {}):
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def four_task_mission(root: Path, **options) -> Path:
    """a -> b -> d <- c: each task writes its own file and checks it (and its dependencies') for real."""
    read = "import pathlib; t = {n: pathlib.Path(n + '.txt').read_text() for n in %r}; assert all(t[n] == n + '\\n' for n in t), t"
    return write_mission(
        root,
        [
            task("a", checks=[py(read % ["a"])]),
            task("b", deps=["a"], checks=[py(read % ["a", "b"])]),
            task("c", checks=[py(read % ["c"])]),
            task("d", deps=["b", "c"], checks=[py(read % ["b", "c", "d"])]),
        ],
        **options,
    )


def tree_of(repo: Path, branch: str) -> str:
    return git(repo, "rev-parse", f"{branch}^{{tree}}").strip()


def end_state(run_dir: Path) -> dict:
    """What a finished run left behind, read from the store and the mission branch; asserts the
    invariants that hold after ANY crash and resume:

    - no duplicate ``Hybrid-Task`` (or ``Hybrid-Rollback``) trailer on the mission branch, and
      every done task's commit is the one the branch carries;
    - no file lock left, no attempt left ``running``, every attempt finished with an outcome;
    - at most one succeeded attempt per task (a task integrated by a killed coordinator has
      none: its interrupted attempt's commit was reconciled from the branch).
    """
    store, run = read_store(run_dir)
    try:
        repo = Path(run.repo_path)
        commits = branch_commits(repo, run.mission_branch)
        trailers = Counter(c["task"] for c in commits if c["task"])
        rollbacks = Counter(c["rollback"] for c in commits if c["rollback"])
        assert all(n == 1 for n in trailers.values()), trailers
        assert all(n == 1 for n in rollbacks.values()), rollbacks
        tasks = {t.task_id: t for t in m.Task.select()}
        for t in tasks.values():
            if t.status in ("done", "rolled_back"):
                sha = next(c["sha"] for c in commits if c["task"] == t.task_id)
                assert t.commit_sha == sha, (t.task_id, t.commit_sha, sha)
                row = m.IntegrationCommit.get(m.IntegrationCommit.task_id == t.task_id)
                assert row.sha == sha
                assert bool(row.reverted_by) == (t.status == "rolled_back"), t.task_id
        assert m.FileLock.select().count() == 0
        attempts: dict[str, list[m.Attempt]] = {}
        for a in m.Attempt.select().order_by(m.Attempt.task_id, m.Attempt.number):
            assert a.outcome not in ("running", "", None), (a.task_id, a.number, a.outcome)
            assert a.finished_at is not None and a.finished_at >= a.started_at, (a.task_id, a.number)
            attempts.setdefault(a.task_id, []).append(a)
        for task_id, rows in attempts.items():
            assert [r.number for r in rows] == list(range(1, len(rows) + 1)), task_id  # none lost, none doubled
            assert sum(r.outcome == "succeeded" for r in rows) <= 1, task_id
        return {
            "status": {tid: t.status for tid, t in tasks.items()},
            "tree": tree_of(repo, run.mission_branch),
            "trailers": sorted(trailers),
            "rollbacks": sorted(rollbacks),
            "outcomes": {tid: [r.outcome for r in rows] for tid, rows in attempts.items()},
            "run_status": run.status,
            "repo": repo,
            "branch": run.mission_branch,
        }
    finally:
        store.close()


# Missions here fail on purpose: never let the failure-rate auto-pause end them early.
NO_AUTO_PAUSE = "\n[policies]\nfailure_rate_pause = 1.0\n"


def attempts_of(task_id: str) -> list:
    return list(m.Attempt.select().where(m.Attempt.task_id == task_id).order_by(m.Attempt.number))
