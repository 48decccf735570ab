"""Integration of one finished task onto the mission branch (room: bench; drives workspace.git).

A small repository (40 files, one commit) gets a mission branch and one agent worktree,
as a run makes them. Each round: reset the worktree to the mission head (untimed, as the
runtime does before an attempt), change one file, then time ``MissionRepo.integrate`` (one
commit with the task trailers, compare-and-swap of the branch). Interleaved with it, the
baseline on the same repository: change one file in the main checkout and time plain
``git add -A`` + ``git commit`` (two subprocesses, no Python git layer).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .common import Figure, median, percentile

BUDGET_MS = 10.0
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}


def _git(cwd: Path, *args: str, env: dict) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_repo(root: Path, files: int = 40) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(files):
        (repo / "src" / f"mod{i:02}.py").write_text(f"VALUE_{i} = {i}\n\n\ndef f{i}():\n    return VALUE_{i}\n")
    (repo / "README.md").write_text("bench repository\n")
    env = os.environ | GIT_ENV
    _git(repo, "init", "-q", "-b", "main", env=env)
    _git(repo, "config", "commit.gpgsign", "false", env=env)
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "-m", "initial", env=env)
    return repo


def run(quick: bool = False, *, rounds: int | None = None) -> tuple[list[Figure], dict]:
    from hybrid_tui.workspace.git import MissionRepo

    rounds = rounds or (5 if quick else 60)
    env = os.environ | GIT_ENV
    ours: list[float] = []
    raw: list[float] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-git-") as tmp:
        root = Path(tmp)
        repo_path = make_repo(root)
        run_dir = root / "run"
        (run_dir / "worktrees").mkdir(parents=True)
        repo = MissionRepo(repo_path, "hybrid/bench", run_dir, "bench-run")
        repo.prepare("main")
        agent = "agent-01"
        worktree = repo.worktree(agent)
        for i in range(rounds + 1):  # round 0 warms the caches (history scan) and is dropped
            repo.reset(agent)
            target = worktree / "src" / f"mod{i % 40:02}.py"
            target.write_text(target.read_text() + f"\n# task {i}\n")
            start = time.perf_counter()
            result = repo.integrate(agent, f"T{i:04}", f"change module {i % 40}")
            elapsed = (time.perf_counter() - start) * 1e3
            if not result.sha:
                raise RuntimeError(f"integrate T{i:04} made no commit: {result}")
            mine = repo_path / "README.md"
            mine.write_text(mine.read_text() + f"line {i}\n")
            start = time.perf_counter()
            subprocess.run(["git", "add", "-A"], cwd=repo_path, env=env, check=True, capture_output=True)
            subprocess.run(["git", "commit", "-q", "-m", f"raw {i}"], cwd=repo_path, env=env, check=True,
                           capture_output=True)
            raw_ms = (time.perf_counter() - start) * 1e3
            if i:
                ours.append(elapsed)
                raw.append(raw_ms)
        commits = int(subprocess.run(["git", "rev-list", "--count", "hybrid/bench"], cwd=repo_path, env=env,
                                     capture_output=True, text=True, check=True).stdout)
    if commits != rounds + 2:  # initial + one per round (warm-up included)
        raise RuntimeError(f"expected {rounds + 2} commits on the mission branch, found {commits}")
    figures = [
        Figure("integration", f"integrate one task, median ({rounds} rounds)", median(ours), "ms",
               median(raw), "git add && git commit, median", BUDGET_MS, "<= 10 ms median",
               note="MissionRepo.integrate = git add -A, write-tree, update-ref "
                    "(3 git processes) vs 2 for the baseline"),
        Figure("integration", "integrate one task, p95", percentile(ours, 95), "ms",
               percentile(raw, 95), "git add && git commit, p95"),
    ]
    details = {"rounds": rounds, "ours_ms": ours, "raw_ms": raw}
    return figures, details


if __name__ == "__main__":
    from .common import render_table

    figs, _ = run()
    print(render_table(figs))
