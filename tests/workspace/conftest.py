"""Fixtures of the workspace tests: small real git repositories in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hybrid_tui.workspace.git import MissionRepo

IDENTITY = ["-c", "user.name=Test User", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A user's repository on branch ``main`` with two files, a staged change and an untracked file."""
    repo = tmp_path / "user"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    (repo / "feature.txt").write_text("feature\n")
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "add", "feature.txt")
    git(repo, "commit", "-q", "-m", "feature work")
    git(repo, "checkout", "-q", "main")
    # Work in progress the tool must never touch.
    (repo / "a.py").write_text("A = 1  # staged edit\n")
    git(repo, "add", "a.py")
    (repo / "notes.txt").write_text("untracked notes\n")
    return repo


@pytest.fixture
def mission(user_repo: Path, tmp_path: Path) -> MissionRepo:
    repo = MissionRepo(user_repo, "hybrid/test-mission", tmp_path / "run", "run1")
    repo.prepare("main")
    return repo
