"""Helpers (not fixtures) for runtime tests: small missions in tmp_path on real git repositories, the CLI
as a real subprocess, and reading the mission branch."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "sample_missions" / "quickstart"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "user", "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "user@example.com",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


def init_git_repo(path: Path, branch: str = "main") -> str:
    git(path, "init", "-q", "-b", branch)
    git(path, "add", "-A")
    git(path, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    return git(path, "rev-parse", "HEAD").strip()


def py(expr: str) -> str:
    """A validation command running ``expr`` with this Python."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(expr)}"


def hybrid(*args: str, cwd: Path, timeout: float = 240, check_exit: int | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )
    if check_exit is not None:
        assert proc.returncode == check_exit, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def copy_quickstart(dest: Path, *, as_git: bool = True) -> Path:
    """The quickstart mission copied to ``dest``; its repo made a git repository on ``main``."""
    shutil.copytree(QUICKSTART, dest, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", ".benchmarks", ".hybrid"))
    if as_git:
        init_git_repo(dest / "repo")
    return dest


def write_mission(
    root: Path,
    tasks: list[dict[str, Any]],
    *,
    files: dict[str, str] | None = None,
    mission: str = "",
    recorded: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """A one-issue mission with ``tasks`` (SIS task dicts) on a git repo holding ``files``."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name, text in (files or {"README.md": "demo\n"}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    init_git_repo(repo)
    (root / "issues").mkdir()
    (root / "issues" / "001-work.md").write_text("# Work\n\nDo the work.\n")
    (root / "sis").mkdir()
    sis = {"sis_version": "1.0", "issue": {"id": "001-work", "title": "Work"}, "tasks": tasks}
    (root / "sis" / "001-work.json").write_text(json.dumps(sis, indent=2))
    (root / "replay").mkdir()
    for task_id, attempts in (recorded or {}).items():
        (root / "replay" / f"{task_id}.json").write_text(json.dumps({"task_id": task_id, "attempts": attempts}))
    (root / "mission.toml").write_text(
        '[mission]\nname = "demo"\nrepo = "repo"\n\n[agents]\nmin_implementers = 2\nmax_implementers = 4\n'
        + mission
    )
    return root


def task(task_id: str, *, deps: list[str] = (), ops: list[dict] | None = None, checks: list[str] = (),
         timeout: float = 60, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "title": f"Task {task_id}",
        "dependencies": list(deps),
        "estimated_duration_minutes": 1,
        "file_operations": ops if ops is not None else [{"op": "create", "path": f"{task_id}.txt", "content": f"{task_id}\n"}],
        "validation": {"commands": list(checks), "timeout_seconds": timeout},
        **extra,
    }


def branch_commits(repo: Path, branch: str) -> list[dict[str, str]]:
    """Commits on ``branch`` since the fork from main, oldest first, with their trailers."""
    fmt = "%H|%(trailers:key=Hybrid-Task,valueonly)|%(trailers:key=Hybrid-Run,valueonly)|%(trailers:key=Hybrid-Rollback,valueonly)|END"
    out = git(repo, "log", "--reverse", f"--format={fmt}", f"main..{branch}")
    commits = []
    for record in out.split("|END"):
        record = record.strip()
        if record:
            sha, task_id, run, rollback = (part.strip() for part in record.split("|"))
            commits.append({"sha": sha, "task": task_id, "run": run, "rollback": rollback})
    return commits


def only_run_dir(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_store(run_dir: Path):
    """(store, run row) of a finished run, opened in this process."""
    from hybrid_tui.store import models as m
    from hybrid_tui.store.db import open_store
    from hybrid_tui.store.runs import run_store_location

    location = run_store_location(run_dir)  # its state.db, or the store its store.url names
    store = open_store(location, create=False)
    runs = m.Run.select()
    if location != str(run_dir / "state.db"):  # a shared store: this folder's run (None until created)
        runs = runs.where(m.Run.id == run_dir.name)
    return store, runs.first()


def drive(coordinator, script: Callable[[], Awaitable[None]] | None = None) -> int:
    """Run the coordinator, and ``script`` next to it (it sees the store as it changes)."""

    async def main() -> int:
        result: dict[str, int] = {}

        async def run() -> None:
            result["code"] = await coordinator.run()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            if script is not None:
                with anyio.fail_after(120):
                    await script()
        return result["code"]

    return anyio.run(main)
