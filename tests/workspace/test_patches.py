"""Code in and out of a worker, with real git: the base fetched over file://, the patch made in
the worker's worktree, and the coordinator's checks refusing a hostile patch (a path not
declared nor locked, .git/, a symlink out, a tree or base that does not match)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hybrid_tui.workspace.patches import PatchRejected, check_and_apply, checkout_base, make_patch


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def setup(tmp_path: Path):
    """(coordinator's slot worktree at the base, a worker's worktree at that base, base sha)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "config", "user.email", "t@example.com")
    git(origin, "config", "user.name", "t")
    (origin / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (origin / "data.bin").write_bytes(bytes(range(256)))
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "base")
    base = git(origin, "rev-parse", "HEAD").strip()
    slot = tmp_path / "slot"
    git(origin, "worktree", "add", "-q", "--detach", str(slot), base)
    worker = checkout_base(tmp_path / "worker-cache.git", origin.as_uri(), base, tmp_path / "worker-wt")
    return slot, worker, base


def _status(worktree: Path) -> str:
    return git(worktree, "status", "--porcelain", "--ignored")


def test_honest_patch_rebuilds_the_tree_in_the_slot(setup):
    slot, worker, base = setup
    (worker / "calc.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    (worker / "data.bin").write_bytes(bytes(reversed(range(256))))  # binary content travels too
    (worker / "new.txt").write_text("new\n")
    patch, tree = make_patch(worker, base)
    files = check_and_apply(slot, base, patch, tree, allowed=lambda p: True)
    assert sorted(files) == ["calc.py", "data.bin", "new.txt"]
    assert (slot / "data.bin").read_bytes() == bytes(reversed(range(256)))
    assert "def sub" in (slot / "calc.py").read_text()
    git(slot, "add", "-A")
    assert git(slot, "write-tree").strip() == tree


def test_path_neither_declared_nor_locked_is_refused(setup):
    slot, worker, base = setup
    (worker / "calc.py").write_text("x = 1\n")
    (worker / "other.py").write_text("y = 2\n")
    patch, tree = make_patch(worker, base)
    with pytest.raises(PatchRejected, match="other.py, neither declared"):
        check_and_apply(slot, base, patch, tree, allowed=lambda p: p == "calc.py")
    assert _status(slot) == ""  # the slot's worktree untouched


def test_symlink_out_of_the_repository_is_refused(setup):
    slot, worker, base = setup
    os.symlink("../../../etc/passwd", worker / "passwd")
    patch, tree = make_patch(worker, base)
    with pytest.raises(PatchRejected, match="symlink"):
        check_and_apply(slot, base, patch, tree, allowed=lambda p: True)
    assert not (slot / "passwd").exists() and not (slot / "passwd").is_symlink()


def test_symlink_inside_the_repository_is_allowed(setup):
    slot, worker, base = setup
    os.symlink("calc.py", worker / "alias.py")
    patch, tree = make_patch(worker, base)
    assert check_and_apply(slot, base, patch, tree, allowed=lambda p: True) == ["alias.py"]
    assert os.readlink(slot / "alias.py") == "calc.py"


@pytest.mark.parametrize("path", [".git/hooks/post-checkout", "sub/.git/config", ".GIT/config"])
def test_path_under_git_dir_is_refused(setup, path):
    slot, _, base = setup
    patch = (f"diff --git a/{path} b/{path}\nnew file mode 100755\nindex 0000000..0000001\n"
             f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+echo pwned\n").encode()
    with pytest.raises(PatchRejected):
        check_and_apply(slot, base, patch, "0" * 40, allowed=lambda p: True)
    assert not (slot / ".git").is_dir()  # still the worktree's .git file, no hook planted
    assert _status(slot) == ""


def test_tree_that_the_patch_does_not_rebuild_is_refused(setup):
    slot, worker, base = setup
    (worker / "calc.py").write_text("x = 1\n")
    patch, _ = make_patch(worker, base)
    base_tree = git(slot, "rev-parse", f"{base}^{{tree}}").strip()
    with pytest.raises(PatchRejected, match="rebuilds tree"):
        check_and_apply(slot, base, patch, base_tree, allowed=lambda p: True)
    assert _status(slot) == ""


def test_patch_made_on_another_base_is_refused(setup):
    slot, worker, base = setup
    (worker / "calc.py").write_text("x = 1\n")
    patch, tree = make_patch(worker, base)
    (slot / "calc.py").write_text("moved\n")
    git(slot, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-am", "moved")
    with pytest.raises(PatchRejected, match="not the dispatched base"):
        check_and_apply(slot, base, patch, tree, allowed=lambda p: True)
