"""What a worktree holds, read with git: its changes as file operations, and the stale
``index.lock`` a killed git leaves behind.

Room: workspace. Plain ``git`` subprocesses (no GitPython: the engine's recorder and crash
recovery call these on git-on runs only, and must not pay for importing it). Touches the
worktree's files and git directory only; decides nothing.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hybrid_tui.spec.models import CreateOp, DeleteOp, PatchOp


class WorktreeReadError(Exception):
    """The worktree's changes could not be read."""


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, text: bool = True) -> Any:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text, env=env)
    if done.returncode != 0:
        err = done.stderr if text else done.stderr.decode(errors="replace")
        raise WorktreeReadError(f"git {' '.join(args[:2])} in {cwd}: {err.strip()}")
    return done.stdout


def worktree_operations(worktree: Path, base: str = "HEAD") -> list[CreateOp | DeleteOp | PatchOp]:
    """The worktree's changes against ``base`` (untracked files included, ignored ones not)
    as file operations: new text files are ``create``, removed files ``delete``, everything
    else a ``patch`` with the file's unified diff. The worktree's own index is left alone."""
    with tempfile.TemporaryDirectory(prefix="hybrid-record-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(worktree, "read-tree", base, env=env)
        _git(worktree, "add", "-A", env=env)
        status = _git(worktree, "diff", "--cached", "--name-status", "--no-renames", "-z", base, env=env)
        fields = [f for f in status.split("\0") if f]
        operations: list[CreateOp | DeleteOp | PatchOp] = []
        for kind, path in zip(fields[0::2], fields[1::2]):
            if kind == "D":
                operations.append(DeleteOp(op="delete", path=path))
                continue
            if kind == "A":
                data = _git(worktree, "show", f":{path}", env=env, text=False)
                try:
                    operations.append(CreateOp(op="create", path=path, content=data.decode("utf-8")))
                    continue
                except UnicodeDecodeError:
                    pass  # binary: a git patch carries it
            diff = _git(worktree, "diff", "--cached", "--binary", "--no-renames", "--no-color", "--full-index",
                        base, "--", path, env=env)
            if diff.strip():
                operations.append(PatchOp(op="patch", path=path, diff=diff))
        return operations


def remove_stale_index_lock(worktree: Path) -> bool:
    """Delete the worktree's ``index.lock`` (only a killed git leaves one; call it when no
    git runs there). True when there was one."""
    dot_git = worktree / ".git"
    if dot_git.is_file():  # a linked worktree: ".git" holds "gitdir: <path>"
        text = dot_git.read_text(errors="replace").strip()
        git_dir = Path(text.split(":", 1)[1].strip()) if text.startswith("gitdir:") else None
    else:
        git_dir = dot_git if dot_git.is_dir() else None
    if git_dir is None:
        return False
    if not git_dir.is_absolute():
        git_dir = (worktree / git_dir).resolve()
    lock = git_dir / "index.lock"
    if lock.exists():
        lock.unlink()
        return True
    return False
