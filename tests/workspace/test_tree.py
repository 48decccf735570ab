"""workspace.tree on real git repositories: the tracked and changed files agents are handed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hybrid_tui.workspace.sandbox import Sandbox
from hybrid_tui.workspace.tree import changed_files, repository_files, tracked_files

from .conftest import git

SPACED = "docs/read me.md"
UNICODE = "src/café ü.py"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository: plain files, a path with spaces and one with non-ASCII letters."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "keep.py").write_text("KEEP = 1\n")
    (root / "edit.py").write_text("EDIT = 1\n")
    (root / "gone.py").write_text("GONE = 1\n")
    (root / "old_name.py").write_text("MOVED = 1\n")
    (root / SPACED).write_text("# read me\n")
    (root / UNICODE).write_text("CAFE = 1\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def test_tracked_files_lists_every_committed_path_sorted(repo: Path) -> None:
    (repo / "untracked.txt").write_text("not yet added\n")
    assert tracked_files(repo) == sorted(
        ["keep.py", "edit.py", "gone.py", "old_name.py", SPACED, UNICODE]
    )


def test_a_clean_worktree_has_no_changed_files(repo: Path) -> None:
    assert changed_files(repo) == []


def test_changed_files_sees_modified_untracked_deleted_renamed_and_odd_names(repo: Path) -> None:
    (repo / "edit.py").write_text("EDIT = 2\n")
    (repo / "gone.py").unlink()
    (repo / "new dir").mkdir()
    (repo / "new dir" / "fresh ü.py").write_text("FRESH = 1\n")  # untracked, in an untracked folder
    (repo / SPACED).write_text("# changed\n")
    (repo / UNICODE).write_text("CAFE = 2\n")
    git(repo, "mv", "old_name.py", "new_name.py")  # a staged rename: both sides count
    assert changed_files(repo) == sorted(
        ["edit.py", "gone.py", "new dir/fresh ü.py", SPACED, UNICODE, "old_name.py", "new_name.py"]
    )
    staged = git(repo, "diff", "--cached", "--name-status")
    changed_files(repo)
    assert git(repo, "diff", "--cached", "--name-status") == staged  # reading stages nothing


def test_outside_git_both_lists_are_empty(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text("A = 1\n")
    assert tracked_files(plain) == []
    assert changed_files(plain) == []


def test_repository_files_are_the_tracked_files_within_the_limit(repo: Path) -> None:
    (repo / "untracked.txt").write_text("not listed\n")
    assert repository_files(repo) == tracked_files(repo)
    assert repository_files(repo, limit=2) == tracked_files(repo)[:2]


def test_repository_files_outside_git_walk_the_folder_skipping_build_and_vcs_folders(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    for folder in ("src", "node_modules/pkg", "__pycache__", ".venv/lib", "build", "src/.pytest_cache"):
        (plain / folder).mkdir(parents=True, exist_ok=True)
    (plain / "b.py").write_text("")
    (plain / "a b.py").write_text("")
    (plain / "src" / "ü.py").write_text("")
    (plain / "node_modules" / "pkg" / "index.js").write_text("")
    (plain / "__pycache__" / "x.pyc").write_bytes(b"")
    (plain / ".venv" / "lib" / "site.py").write_text("")
    (plain / "build" / "out.o").write_bytes(b"")
    (plain / "src" / ".pytest_cache" / "v").write_text("")
    assert repository_files(plain) == ["a b.py", "b.py", "src/ü.py"]
    assert repository_files(plain, limit=2) == ["a b.py", "b.py"]


def test_a_repository_that_tracks_nothing_yet_is_walked(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "first.py").write_text("")
    assert tracked_files(empty) == []
    assert repository_files(empty) == ["first.py"]


def test_the_sandbox_hands_an_agent_its_worktree_lists(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "task")
    sandbox = Sandbox(worktree)
    assert sandbox.tracked_files() == tracked_files(repo)
    assert sandbox.changed_files() == []
    sandbox.write_text("keep.py", "KEEP = 2\n")
    (worktree / "made by a command.txt").write_text("outside the sandbox's own writes\n")
    os.remove(worktree / UNICODE)
    assert sandbox.changed_files() == sorted(["keep.py", "made by a command.txt", UNICODE])
    assert sandbox.touched == {"keep.py"}
    assert changed_files(repo) == []  # the main checkout is untouched
