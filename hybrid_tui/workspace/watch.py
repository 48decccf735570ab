"""Find files written under a folder since a moment: how a write outside its worktree by an
external agent CLI (which does not go through the sandbox) is noticed after the fact.

Room: workspace. Reads file metadata only; never changes a file.

A file counts as written when its modification or status-change time is at or after the
moment (``ctime`` also catches a file moved or copied in with an old ``mtime``). ``.git``
folders are skipped (git itself, and the coordinator's worktree bookkeeping, write there), as
are the ``skip`` folders. Deletions and empty new folders are not seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

__all__ = ["files_written_since"]


def files_written_since(root: Path, since_ns: int, skip: Iterable[Path] = (), limit: int = 20) -> list[Path]:
    """Up to ``limit`` paths under ``root`` written at or after ``since_ns`` (``time.time_ns()``)."""
    root = Path(root)
    skipped = {os.path.realpath(p) for p in skip}
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git" and os.path.realpath(os.path.join(folder, d)) not in skipped]
        for name in files:  # a folder's times move with its files: the files are named instead
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if max(info.st_mtime_ns, info.st_ctime_ns) >= since_ns:
                found.append(Path(path))
                if len(found) >= limit:
                    return found
    return found
