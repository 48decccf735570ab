"""The quickstart mission end to end: headless, --json, 4 agents, a real git repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hybrid_tui.spec.loader import load_mission
from hybrid_tui.store import models as m

from .helpers import branch_commits, git, hybrid, only_run_dir, read_store


def test_quickstart_runs_headless_to_one_commit_per_task(quickstart_copy: Path, tmp_path: Path, any_store_url: str):
    """Once on the run folder's SQLite store, once with --store postgresql://..."""
    repo = quickstart_copy / "repo"
    user_head = git(repo, "rev-parse", "main").strip()
    runs = tmp_path / "runs"
    store_args = ["--store", any_store_url] if "://" in any_store_url else []

    proc = hybrid("run", str(quickstart_copy), "--headless", "--json", "--agents", "4", "--runs-dir", str(runs),
                  *store_args, cwd=tmp_path, check_exit=0)

    # --json: every stdout line is one JSON object, the last one the summary.
    lines = proc.stdout.splitlines()
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects)
    assert objects[-1]["kind"] == "run.summary" and objects[-1]["exit_code"] == 0
    assert objects[-1]["tasks"]["done"] == 8

    run_dir = only_run_dir(runs)
    store, run = read_store(run_dir)
    try:
        tasks = {t.task_id: t for t in m.Task.select()}
        assert {t.status for t in tasks.values()} == {"done"}

        # Exactly one commit per task on the mission branch, with the right trailers.
        commits = branch_commits(repo, run.mission_branch)
        assert sorted(c["task"] for c in commits) == sorted(tasks)
        assert {c["run"] for c in commits} == {run.id}
        for c in commits:
            assert tasks[c["task"]].commit_sha == c["sha"]
        assert m.IntegrationCommit.select().count() == 8

        # Dependency order: every task's commit comes after its dependencies' commits.
        position = {c["task"]: i for i, c in enumerate(commits)}
        mission = load_mission(quickstart_copy)
        for spec in mission.tasks:
            for dep in spec.dependencies:
                assert position[dep] < position[spec.task_id], (dep, spec.task_id)

        # The recorded failing attempt failed validation, then passed with the failure as feedback.
        failing = [tid for tid, rec in mission.recorded.items() if len(rec.attempts) > 1]
        assert failing
        for tid in failing:
            attempts = list(m.Attempt.select().where(m.Attempt.task_id == tid).order_by(m.Attempt.number))
            assert [a.outcome for a in attempts] == ["failed", "succeeded"]
            assert attempts[0].failure_type == "validation_failed"
            assert attempts[0].failure_message.strip()
            assert attempts[1].feedback.strip()
            assert Path(attempts[0].log_path).is_file()

        # Nothing left running or locked.
        assert m.FileLock.select().count() == 0
        assert m.Attempt.select().where(m.Attempt.outcome == "running").count() == 0
        assert run.status == "finished"
    finally:
        store.close()

    # The user's branch and checkout are untouched.
    assert git(repo, "rev-parse", "main").strip() == user_head
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain", "--untracked-files=no").strip() == ""

    # The project's own tests pass on the final mission branch.
    checkout = tmp_path / "final"
    checkout.mkdir()
    archive = subprocess.run(["git", "archive", run.mission_branch], cwd=repo, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive, check=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=checkout,
                           capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_invalid_mission_is_refused_and_creates_nothing(tmp_path: Path):
    mission = tmp_path / "bad"
    mission.mkdir()
    (mission / "mission.toml").write_text('[mission]\nname = "x"\nbogus = 1\n')
    runs = tmp_path / "runs"
    proc = hybrid("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 2
    assert "mission.toml" in proc.stderr
    assert proc.stdout == ""
    assert not runs.exists()
