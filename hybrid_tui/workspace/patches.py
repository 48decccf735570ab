"""Code in and out of a worker: the pinned base fetched, the attempt's change as a binary patch,
and the coordinator's checks before that patch may touch a slot's worktree.

Room: workspace (runs git; decides nothing about what runs next).

Worker side: :func:`checkout_base` fetches ONE commit from the read-only endpoint the
coordinator names (``file://`` on one machine, ssh or git-daemon across machines) into a
bare cache and adds a detached worktree at it; :func:`make_patch` stages the worktree and
returns ``git diff --binary`` from the base to that tree, with the tree's id.

Coordinator side: :func:`check_and_apply` rebuilds the tree from the base and the patch in
a scratch index (never the worktree), refuses it unless it is exactly the tree the worker
named, no path is under ``.git/``, every path is allowed (a declared file or a lock granted
to that attempt) and no symlink points outside the repository; only then the slot's
worktree is set to that tree. The existing integration path commits it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
_fetch_locks: dict[str, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()


class PatchRejected(Exception):
    """The worker's patch failed a check: nothing was applied."""


class FetchError(Exception):
    """The base commit could not be fetched from the endpoint."""


def _git(cwd: Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    full_env = dict(os.environ, GIT_TERMINAL_PROMPT="0", **(env or {}))
    proc = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env=full_env)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
    return proc


def _err(exc: subprocess.CalledProcessError) -> str:
    """git's last line of complaint (the one that says what went wrong)."""
    lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else str(exc)


# ---------------------------------------------------------------------------- worker side

def _cache_lock(cache: Path) -> threading.Lock:
    with _fetch_locks_guard:
        return _fetch_locks.setdefault(str(cache), threading.Lock())


def checkout_base(cache: Path, endpoint: str, base: str, worktree: Path) -> Path:
    """A detached worktree at commit ``base`` fetched from ``endpoint`` into the bare ``cache``."""
    with _cache_lock(cache):  # one worker's slots share the cache: git's own locks are not enough for init
        try:
            if not (cache / "HEAD").is_file():
                cache.mkdir(parents=True, exist_ok=True)
                _git(cache, "init", "-q", "--bare")
            if _git(cache, "cat-file", "-e", f"{base}^{{commit}}", check=False).returncode != 0:
                _git(cache, "fetch", "-q", "--no-tags", endpoint, base)
            if _git(cache, "cat-file", "-e", f"{base}^{{commit}}", check=False).returncode != 0:
                raise FetchError(f"{endpoint}: commit {base[:12]} not found after fetch")
            if worktree.exists():
                _git(cache, "worktree", "remove", "--force", "--force", str(worktree), check=False)
                shutil.rmtree(worktree, ignore_errors=True)
            _git(cache, "worktree", "prune")
            worktree.parent.mkdir(parents=True, exist_ok=True)
            _git(cache, "worktree", "add", "-q", "--detach", "-f", str(worktree), base)
        except subprocess.CalledProcessError as exc:
            raise FetchError(f"cannot check out {base[:12]} from {endpoint}: {_err(exc)}") from None
    return worktree


def remove_worktree(cache: Path, worktree: Path) -> None:
    with _cache_lock(cache):
        _git(cache, "worktree", "remove", "--force", "--force", str(worktree), check=False)
        shutil.rmtree(worktree, ignore_errors=True)
        _git(cache, "worktree", "prune", check=False)


def make_patch(worktree: Path, base: str) -> tuple[bytes, str]:
    """(binary patch from ``base`` to the worktree's staged tree, that tree's id)."""
    _git(worktree, "add", "-A")
    tree = _git(worktree, "write-tree").stdout.decode().strip()
    patch = _git(worktree, "diff", "--cached", "--binary", "--full-index", "--no-renames", "--no-color", base).stdout
    return patch, tree


def head_of(worktree: Path) -> str:
    return _git(worktree, "rev-parse", "HEAD").stdout.decode().strip()


# ---------------------------------------------------------------------------- coordinator side

def _is_under_git_dir(path: str) -> bool:
    return any(part.lower() == ".git" for part in path.split("/"))


def _symlink_escapes(path: str, target: str) -> bool:
    if not target or target.startswith("/") or "\0" in target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == ".." or joined.startswith("../") or _is_under_git_dir(joined)


def check_and_apply(worktree: Path, base: str, patch: bytes, tree: str, allowed: Callable[[str], bool],
                    git_env: dict[str, str] | None = None) -> list[str]:
    """Check the worker's ``patch`` (from ``base``, claimed to give ``tree``) and set the
    worktree (clean, at ``base``) to that tree. Returns the changed paths; raises
    :class:`PatchRejected` (worktree untouched) when a check fails. ``git_env`` says where
    the new objects go (``MissionRepo.object_environment``: the user's store, as integration's)."""
    objects = git_env or {}
    head = head_of(worktree)
    if head != base:
        raise PatchRejected(f"patch base {base[:12]} is not the dispatched base {head[:12]}")
    with tempfile.TemporaryDirectory(prefix="hybrid-patch-") as scratch:
        index = {**objects, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        try:
            _git(worktree, "read-tree", base, env=index)
            _git(worktree, "apply", "--cached", "--binary", "--whitespace=nowarn", "-", data=patch, env=index)
            rebuilt = _git(worktree, "write-tree", env=index).stdout.decode().strip()
        except subprocess.CalledProcessError as exc:
            raise PatchRejected(f"patch does not apply to {base[:12]}: {_err(exc)}") from None
    if rebuilt != tree:
        raise PatchRejected(f"patch rebuilds tree {rebuilt[:12]}, not the tree {tree[:12]} the worker named")
    raw = _git(worktree, "diff-tree", "-r", "-z", "--no-renames", base, tree, env=objects).stdout.decode(errors="surrogateescape")
    fields = raw.split("\0")
    changed: list[str] = []
    # -z raw format: ":oldmode newmode oldsha newsha status\0path\0" per entry
    for header, path in zip(fields[0::2], fields[1::2]):
        if not header.startswith(":"):
            continue
        _, new_mode, _, new_sha, _ = header[1:].split(" ", 4)
        if _is_under_git_dir(path):
            raise PatchRejected(f"patch touches {path}, under .git/")
        if new_mode == GITLINK_MODE:
            raise PatchRejected(f"patch adds a submodule at {path}")
        if new_mode == SYMLINK_MODE:
            target = _git(worktree, "cat-file", "blob", new_sha, env=objects).stdout.decode(errors="replace")
            if _symlink_escapes(path, target):
                raise PatchRejected(f"patch makes {path} a symlink to {target!r}, outside the repository")
        if not allowed(path):
            raise PatchRejected(f"patch changes {path}, neither declared by the task nor locked for this attempt")
        changed.append(path)
    _git(worktree, "read-tree", "-u", "--reset", tree, env=objects)
    return changed
