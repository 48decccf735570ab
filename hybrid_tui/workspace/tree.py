"""What a working tree holds: its tracked files and the files changed in it, read-only.

Room: workspace. Reads a repository or worktree with ``git ls-files`` / ``git status`` and,
outside git, walks the folder; writes nothing. Agents get these lists from here (through
their :class:`~hybrid_tui.workspace.sandbox.Sandbox`, or the planner through
:func:`repository_files`) so that no agent runs git itself.

Plain ``git`` subprocesses rather than GitPython: these are two short read-only queries,
and a planner or an agent should not pay for importing GitPython to make them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["MAX_FILES", "changed_files", "repository_files", "tracked_files"]

MAX_FILES = 5000
GIT_TIMEOUT_SECONDS = 60
# Folders a walk outside git skips: version control, dependencies, caches and build output.
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", "dist", "build", ".mypy_cache", ".pytest_cache"}


def _git_output(root: Path, *args: str) -> str | None:
    """Stdout of ``git ARGS`` run in ``root``, or None when git is missing, fails or hangs."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, check=True, timeout=GIT_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # surrogateescape: a path that is not valid UTF-8 still round-trips to the same bytes.
    return done.stdout.decode("utf-8", errors="surrogateescape")


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
