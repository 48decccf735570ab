"""Fixtures for the console tests: a real SQLite store and a real git repository in tmp_path,
filled with a known run state, and a frozen clock. Nothing here races a live worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import git
import pytest

from hybrid_tui.store import models as m
from hybrid_tui.store.db import Store, open_store

FIXED = 1_700_000_000.0  # the frozen "now" of every console test
RUN_ID = "run-demo"

os.environ["TZ"] = "UTC"
time.tzset()

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_AUTHOR_DATE": "2023-11-14T22:00:00+0000", "GIT_COMMITTER_DATE": "2023-11-14T22:00:00+0000",
}


def _commit(repo: git.Repo, message: str) -> str:
    repo.git.add("-A")
    repo.git.commit("-q", "-m", message, env=GIT_ENV)
    return repo.head.commit.hexsha


def make_repo(root: Path) -> tuple[Path, dict[str, str]]:
    path = root / "repo"
    path.mkdir()
    repo = git.Repo.init(path, initial_branch="main")
    (path / "app.py").write_text("def main():\n    return 1\n")
    (path / "util.py").write_text("X = 1\n")
    _commit(repo, "base")
    (path / "app.py").write_text("def main():\n    return 2\n")
    sha_a = _commit(repo, "T1-setup: return two\n\nHybrid-Task: T1-setup\nHybrid-Run: run-demo")
    (path / "app.py").write_text("def main():\n    return 3\n")
    (path / "util.py").write_text("X = 2\n")
    sha_b = _commit(repo, "T3-api: return three\n\nHybrid-Task: T3-api\nHybrid-Run: run-demo")
    return path, {"T1-setup": sha_a, "T3-api": sha_b}


def spec(task_id: str, title: str, files: list[str], deps: list[str]) -> str:
    return json.dumps({
        "task_id": task_id, "title": title, "description": f"Implement {title.lower()}.",
        "dependencies": deps,
        "file_operations": [{"op": "edit", "path": f, "old_string": "1", "new_string": "2"} for f in files],
        "validation": {"commands": ["python -m pytest -q"], "timeout_seconds": 120},
    })


TASKS = [
    # id, title, status, score, agent, attempts, cost, deps, files, attention, failure
    ("T1-setup", "Set up the project", "done", 190, "impl-1", 1, 0.12, [], ["app.py"], "", None),
    ("T2-model", "Add the data model", "running", 150, "impl-2", 1, 0.05, ["T1-setup"], ["model.py"], "", None),
    ("T3-api", "Expose the API", "done", 140, "impl-3", 2, 0.31, ["T1-setup"], ["app.py", "util.py"], "", None),
    ("T4-ui", "Build the \x1b[31mUI\x1b[0m [bold]now[/bold]", "failed", 110, "", 3, 0.44, ["T2-model"],
     ["ui.py"], "validation_failed after 3 attempts: tests/test_ui.py::test_render failed", "validation_failed"),
    ("T5-docs", "Write the docs", "blocked", 40, "", 0, 0.0, ["T4-ui"], ["README.md"],
     "blocked: dependency T4-ui failed", None),
    ("T6-merge", "Merge config", "failed", 80, "", 1, 0.08, [], ["config.toml"],
     "git_conflict: config.toml changed on the mission branch", "git_conflict"),
    ("T7-cli", "Command line flags", "ready", 90, "", 0, 0.0, [], ["cli.py"], "", None),
    ("T8-perf", "Cache the lookups", "retry_wait", 70, "", 1, 0.03, ["T1-setup"], ["cache.py"], "", "network_error"),
    ("T9-tests", "More tests", "pending", 60, "", 0, 0.0, ["T2-model", "T3-api"], ["tests/test_all.py"], "", None),
]


def fill_store(store: Store, root: Path, *, run_status: str = "running", pause_reason: str = "") -> Store:
    repo_path, shas = make_repo(root)
    run_dir = root / "run"
    (run_dir / "logs").mkdir(parents=True)
    now = FIXED
    with store.write():
        m.Run.create(
            id=RUN_ID, mission_name="quickstart", mission_path=str(root / "mission"), run_dir=str(run_dir),
            repo_path=str(repo_path), source_repo=str(repo_path), base_branch="main", mission_branch="hybrid/quickstart",
            status=run_status, pause_reason=pause_reason, config_json="{}", mission_budget_usd=1.5,
            retry_budget_usd=0.5, pool_min=2, pool_max=6, pool_target=3, created_at=now - 900, updated_at=now,
            heartbeat_at=None if run_status in ("stopped", "finished") else now,  # a coordinator drives a live run
        )
    with store.write(RUN_ID) as v:
        for i, (tid, title, status, score, agent, attempts, cost, deps, files, attention, failure) in enumerate(TASKS):
            started = now - 600 + i * 30 if attempts else None
            finished = started + 120 if status in ("done", "failed") and started else None
            m.Task.create(
                run=RUN_ID, task_id=tid, issue_id="ISSUE-1", title=title, priority="HIGH", spec_json=spec(tid, title, files, deps),
                estimated_input_tokens=15000, estimated_output_tokens=8000,
                status=status, score=score, agent_id=agent or None, attempts=attempts, cost_usd=cost, failure_type=failure,
                attention_reason=attention, commit_sha=shas.get(tid), created_at=now - 900, updated_at=now - 100 + i,
                started_at=started, finished_at=finished, version=v,
            )
            for dep in deps:
                m.Dependency.create(run=RUN_ID, task_id=tid, depends_on=dep)
            for seq, f in enumerate(files):
                m.FileOperation.create(run=RUN_ID, task_id=tid, seq=seq, op="edit", path=f)
            for n in range(1, attempts + 1):
                log = run_dir / "logs" / f"{tid}-{n}.log"
                log.write_text(f"running checks for {tid}\n\x1b[2Jcleared? no: inert\nattempt {n} output\n")
                last = n == attempts
                outcome = "running" if status == "running" and last else (
                    "succeeded" if status == "done" and last else "failed")
                a_start = started + (n - 1) * 40
                m.Attempt.create(
                    run=RUN_ID, task_id=tid, number=n, agent_id=agent or "impl-1", backend="replay",
                    model="claude-haiku-4-5" if n == 1 else "claude-sonnet-4-5",
                    started_at=a_start, finished_at=None if outcome == "running" else a_start + 35,
                    duration_seconds=0 if outcome == "running" else 35, outcome=outcome,
                    failure_type=None if outcome in ("running", "succeeded") else (failure or "validation_failed"),
                    failure_message="" if outcome in ("running", "succeeded") else "1 test failed",
                    input_tokens=12000, output_tokens=3000, cost_usd=round(cost / attempts, 4),
                    log_path=str(log.relative_to(run_dir)), version=v,
                )
        for i in range(1, 5):
            busy = i in (2, 3)
            m.Agent.create(
                run=RUN_ID, agent_id=f"impl-{i}", backend="replay", model="claude-haiku-4-5",
                state="busy" if busy else ("retired" if i == 4 else "idle"),
                task_id="T2-model" if i == 2 else ("T7-cli" if i == 3 else None),
                tasks_done=i, created_at=now - 900, updated_at=now, version=v,
            )
        m.FileLock.create(run=RUN_ID, path="model.py", task_id="T2-model", acquired_at=now - 95, expires_at=now + 3505)
        m.FileLock.create(run=RUN_ID, path="cli.py", task_id="T7-cli", acquired_at=now - 10, expires_at=now + 3590)
        for tid, sha in shas.items():
            files = ["app.py"] if tid == "T1-setup" else ["app.py", "util.py"]
            m.IntegrationCommit.create(run=RUN_ID, task_id=tid, sha=sha, files_json=json.dumps(files),
                                       committed_at=now - 400 if tid == "T1-setup" else now - 200)
        for k in range(12):
            m.ResourceSample.create(
                run=RUN_ID, ts=now - 110 + k * 10, cpu_percent=20 + k * 3, memory_percent=55 + k,
                disk_percent=71.5, disk_free_bytes=42 * 1024**3, coordinator_rss_bytes=96 * 1024**2,
            )
    events = [
        ("run.start", "info", None, "mission quickstart started with 9 tasks"),
        ("task.status", "info", "T1-setup", "done (commit integrated)"),
        ("attempt.finished", "warning", "T4-ui", "validation failed: \x1b]0;pwned\x07 [red]markup[/red]"),
        ("task.status", "error", "T4-ui", "failed after 3 attempts: needs attention"),
        ("budget.alert", "warning", None, "mission spend reached 50% of $1.50"),
        ("task.status", "error", "T6-merge", "git conflict on config.toml"),
    ]
    for k, (kind, level, tid, message) in enumerate(events):
        store.add_event(RUN_ID, kind, message, level=level, task_id=tid, ts=now - 300 + k * 40)
    return store


@pytest.fixture
def demo_store(tmp_path) -> Store:
    store = open_store(tmp_path / "state.db")
    fill_store(store, tmp_path)
    yield store
    store.close()


@pytest.fixture
def frozen():
    return lambda: FIXED


def make_app(store: Store, *, theme: str = "dark", coordinator=None, poll_interval: float = 0.5):
    """The console on the demo run, with a frozen clock and no animations."""
    from hybrid_tui.tui import HybridApp

    app = HybridApp(store, RUN_ID, coordinator=coordinator, theme=theme, clock=lambda: FIXED, poll_interval=poll_interval)
    app.animation_level = "none"
    return app


async def select_task(pilot, task_id: str) -> None:
    """Move the task table's cursor onto ``task_id`` with the keyboard."""
    table = pilot.app.query_one("#task-table")
    await pilot.pause()
    target = table.get_row_index(task_id)
    while table.cursor_row < target:
        await pilot.press("down")
    while table.cursor_row > target:
        await pilot.press("up")
    await pilot.pause()
