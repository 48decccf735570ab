"""What a working tree holds, read with git: its tracked files, the files changed in it, its
changes as file operations, and the stale ``index.lock`` a killed git leaves behind.

Room: workspace. Reads a repository or worktree with plain ``git`` subprocesses (no
GitPython: agents, the planner, the engine's recorder and crash recovery call these, and a
run with git off must not pay for importing it) and, outside git, walks the folder. Writes
nothing but a stale lock's removal. Agents get the file lists from here through their
:class:`~hybrid_tui.workspace.sandbox.Sandbox` (the planner through
:func:`repository_files`), so that no agent runs git itself.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hybrid_tui.spec.models import CreateOp, DeleteOp, PatchOp

__all__ = ["MAX_FILES", "WorktreeReadError", "changed_files", "remove_stale_index_lock", "repository_files",
           "tracked_files", "worktree_operations"]

MAX_FILES = 5000
GIT_TIMEOUT_SECONDS = 60
# Folders a walk outside git skips: version control, dependencies, caches and build output.
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", "dist", "build", ".mypy_cache", ".pytest_cache"}


class WorktreeReadError(Exception):
    """The worktree's changes could not be read."""


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, text: bool = True,
         timeout: float | None = None) -> Any:
    """Stdout of ``git ARGS`` run in ``cwd``; :class:`WorktreeReadError` when it fails."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text, env=env, timeout=timeout)
    if done.returncode != 0:
        err = done.stderr if text else done.stderr.decode(errors="replace")
        raise WorktreeReadError(f"git {' '.join(args[:2])} in {cwd}: {err.strip()}")
    return done.stdout


def _git_output(root: Path, *args: str) -> str | None:
    """Stdout of ``git ARGS`` run in ``root``, or None when git is missing, fails or hangs."""
    try:
        out = _git(root, *args, text=False, timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError, WorktreeReadError):
        return None
    # surrogateescape: a path that is not valid UTF-8 still round-trips to the same bytes.
    return out.decode("utf-8", errors="surrogateescape")


def tracked_files(root: Path) -> list[str]:
    """The repository-relative paths git tracks in ``root`` (sorted); ``[]`` outside git."""
    out = _git_output(Path(root), "ls-files", "-z")
    if out is None:
        return []
    return sorted(path for path in out.split("\0") if path)


def changed_files(root: Path) -> list[str]:
    """Paths changed in the worktree ``root`` (sorted): modified, added, deleted and untracked
    files, and both sides of a rename; ``[]`` outside git."""
    out = _git_output(Path(root), "status", "--porcelain", "-z", "--untracked-files=all")
    if out is None:
        return []
    paths: set[str] = set()
    fields = out.split("\0")
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if len(entry) < 4:  # "XY path": anything shorter is the empty tail after the last NUL
            continue
        status, path = entry[:2], entry[3:]
        paths.add(path)
        if "R" in status or "C" in status:  # a rename carries its source in the next field
            if index < len(fields) and fields[index]:
                paths.add(fields[index])
            index += 1
    return sorted(paths)


def repository_files(root: Path, limit: int = MAX_FILES) -> list[str]:
    """At most ``limit`` files of ``root``: its tracked files or, outside git (or in a
    repository that tracks nothing yet), a sorted walk that skips build and VCS folders."""
    root = Path(root)
    files = tracked_files(root)
    if files:
        return files[:limit]
    found: list[str] = []
    for current, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            found.append((Path(current) / name).relative_to(root).as_posix())
            if len(found) >= limit:
                return found
    return found


def worktree_operations(worktree: Path, base: str = "HEAD",
                        paths: list[str] | None = None) -> list[CreateOp | DeleteOp | PatchOp]:
    """The worktree's changes against ``base`` (untracked files included, ignored ones not)
    as file operations: new text files are ``create``, removed files ``delete``, everything
    else a ``patch`` with the file's unified diff. ``paths`` limits them to those files (the
    agent's own, not what setup or validation left). The worktree's own index is left alone."""
    with tempfile.TemporaryDirectory(prefix="hybrid-record-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(worktree, "read-tree", base, env=env)
        if paths is None:
            _git(worktree, "add", "-A", env=env)
        else:
            for path in paths:  # one by one: a path created and removed again matches nothing
                subprocess.run(["git", "add", "-A", "--", f":(literal){path}"], cwd=worktree, env=env,
                               capture_output=True)
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
