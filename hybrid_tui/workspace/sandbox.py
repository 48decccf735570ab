"""Sandboxed file access for agents: every read, list, search and write of an agent goes here.

Room: workspace. Touches only files under one root (an agent's worktree). Paths are checked
lexically (``spec.paths.normalize_repo_path``: ``..``, absolute, NUL, ``.git/``, long names)
and then on the file system: symlinks are resolved and anything that lands outside the root
(or inside its ``.git``) is refused, also for files that do not exist yet. The worktree's
tracked and changed files come from :mod:`hybrid_tui.workspace.tree`, so agents never run git.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Iterator

from hybrid_tui.spec.models import CreateOp, DeleteOp, EditOp, IntentOp, PatchOp
from hybrid_tui.spec.paths import UnsafePath, normalize_repo_path
from hybrid_tui.workspace import tree

__all__ = ["Sandbox", "SandboxError", "FileLockedError", "EditError"]

_BINARY_SNIFF_BYTES = 8192
_MAX_SEARCH_LINE_CHARS = 400
_SYMLINK_MODE = "120000"


class SandboxError(Exception):
    """A refused or failed file access; the message names the path and the reason."""


class FileLockedError(SandboxError):
    """A write to an undeclared file whose lock is held by another task."""


class EditError(SandboxError):
    """An edit whose ``old`` text is missing or not unique."""


class EditTargetMissing(EditError):
    """An edit whose ``old`` text is not in the file (any more): the file moved on under it."""


class Sandbox:
    """File access confined to ``root``.

    ``declared`` are the task's declared files (already locked at dispatch). Writing any
    other file first calls ``claim(path)``, which takes its lock; ``False`` means another
    task holds it and the write fails with :class:`FileLockedError`. Without ``claim``
    undeclared writes are allowed.
    """

    def __init__(
        self,
        root: Path,
        declared: Iterable[str] = (),
        claim: Callable[[str], bool] | None = None,
        max_read_bytes: int = 1_000_000,
    ) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise SandboxError(f"{root}: sandbox root is not a directory")
        self._git_dir = self.root / ".git"
        self._allowed: set[str] = set()
        for path in declared:
            try:
                self._allowed.add(normalize_repo_path(path))
            except UnsafePath:
                pass  # never writable; the spec layer reports it
        self._claim = claim
        self.max_read_bytes = max_read_bytes
        self._touched: set[str] = set()

    # ------------------------------------------------------------------ paths

    @property
    def touched(self) -> set[str]:
        """Repository-relative paths written (created, edited, patched or deleted)."""
        return set(self._touched)

    def _lexical(self, rel: str) -> str:
        try:
            return normalize_repo_path(rel)
        except UnsafePath as exc:
            raise SandboxError(f"{rel!r}: {exc}") from None

    def resolve(self, rel: str) -> Path:
        """The absolute, symlink-free path of ``rel`` inside the root, or :class:`SandboxError`."""
        norm = self._lexical(rel)
        # Non-strict resolve follows every existing symlink (dangling ones too) and keeps
        # the not-yet-existing tail as is, so the whole parent chain is checked.
        try:
            real = (self.root / norm).resolve(strict=False)
        except (OSError, RuntimeError) as exc:  # symlink loop, name too long ...
            raise SandboxError(f"{norm}: cannot resolve path ({exc})") from None
        if real != self.root and not real.is_relative_to(self.root):
            raise SandboxError(f"{norm}: resolves to {real}, outside the repository (symlink)")
        if real == self._git_dir or real.is_relative_to(self._git_dir):
            raise SandboxError(f"{norm}: resolves into .git/, which is not allowed")
        if real == self.root:
            raise SandboxError(f"{norm}: names the repository root, not a file")
        return real

    def _relative(self, real: Path) -> str:
        return real.relative_to(self.root).as_posix()

    def _dir(self, rel: str) -> Path:
        if rel in ("", ".", "./"):
            return self.root
        real = self.resolve(rel)
        if not real.is_dir():
            raise SandboxError(f"{rel}: not a directory")
        return real

    # ------------------------------------------------------------------ reads

    def read_text(self, rel: str, start_line: int | None = None, end_line: int | None = None, *,
                  whole: bool = False) -> str:
        """The text of ``rel``; with ``start_line``/``end_line`` (1-based, inclusive) only those lines.
        ``whole``: no read limit (the limit keeps a model's context small; an edit reads the
        file it rewrites, whatever its size)."""
        real = self.resolve(rel)
        name = self._relative(real)
        if not real.exists():
            raise SandboxError(f"{name}: no such file")
        if real.is_dir():
            raise SandboxError(f"{name}: is a directory; use list_files")
        if not real.is_file():  # a FIFO or device would block or never end
            raise SandboxError(f"{name}: not a regular file")
        if start_line is not None and start_line < 1:
            raise SandboxError(f"{name}: start_line must be 1 or more, got {start_line}")
        if end_line is not None and start_line is not None and end_line < start_line:
            raise SandboxError(f"{name}: end_line {end_line} is before start_line {start_line}")
        ranged = start_line is not None or end_line is not None
        size = real.stat().st_size
        if not ranged and not whole and size > self.max_read_bytes:
            raise SandboxError(
                f"{name}: file is {size} bytes, over the read limit of {self.max_read_bytes}; "
                "read a line range with start_line/end_line"
            )
        with open(real, "rb") as handle:
            if b"\x00" in handle.read(_BINARY_SNIFF_BYTES):
                raise SandboxError(f"{name}: binary file, not readable as text")
            handle.seek(0)
            if not ranged:
                return self._decode(handle.read(), name)
            first = start_line or 1
            lines: list[bytes] = []
            total = 0
            for number, line in enumerate(handle, start=1):
                if end_line is not None and number > end_line:
                    break
                if number < first:
                    continue
                total += len(line)
                if total > self.max_read_bytes:
                    raise SandboxError(
                        f"{name}: lines {first}-{end_line or 'end'} are over the read limit of "
                        f"{self.max_read_bytes} bytes; read a smaller range"
                    )
                lines.append(line)
            return self._decode(b"".join(lines), name)

    @staticmethod
    def _decode(data: bytes, name: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SandboxError(f"{name}: not valid UTF-8 text (binary file?)") from None

    def _walk(self, top: Path) -> Iterator[Path]:
        # os.walk does not follow symlinked directories, so a link cannot lead the walk outside.
        for current, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for file in sorted(files):
                yield Path(current) / file

    def list_files(self, rel: str = ".", limit: int = 2000) -> list[str]:
        """Relative paths of the files under ``rel`` (sorted, ``.git`` skipped), at most ``limit``."""
        found: list[str] = []
        for path in self._walk(self._dir(rel)):
            if len(found) >= limit:
                break
            found.append(self._relative(path))
        return found

    def tracked_files(self) -> list[str]:
        """The files git tracks in the worktree (sorted, repository-relative); ``[]`` outside git."""
        return tree.tracked_files(self.root)

    def changed_files(self) -> list[str]:
        """The files changed in the worktree so far, by anyone (sorted): modified, added,
        deleted, untracked, both sides of a rename. Unlike :attr:`touched`, this also sees
        what an external agent command changed without going through the sandbox."""
        return tree.changed_files(self.root)

    def search(self, pattern: str, rel: str = ".", limit: int = 200) -> list[tuple[str, int, str]]:
        """``(path, line number, line)`` for lines matching the regex ``pattern``, at most ``limit``."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise SandboxError(f"search pattern {pattern!r} is not a valid regular expression: {exc}") from None
        top = self._dir(rel)
        hits: list[tuple[str, int, str]] = []
        for path in self._walk(top):
            if path.is_symlink():
                try:
                    self.resolve(self._relative(path))
                except SandboxError:
                    continue
            try:
                info = path.stat()
                if not stat.S_ISREG(info.st_mode) or info.st_size > self.max_read_bytes:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
                continue
            text = data.decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    hits.append((self._relative(path), number, line[:_MAX_SEARCH_LINE_CHARS]))
                    if len(hits) >= limit:
                        return hits
        return hits

    # ----------------------------------------------------------------- writes

    def _writable(self, rel: str) -> tuple[Path, str]:
        real = self.resolve(rel)
        name = self._relative(real)
        if name not in self._allowed:
            if self._claim is not None and not self._claim(name):
                raise FileLockedError(f"file_locked: {name} is held by another task")
            self._allowed.add(name)
        return real, name

    def allows(self, name: str) -> bool:
        """May the attempt change repository path ``name``: declared, or its lock granted now
        (the coordinator's check of a worker's patch, path by path)."""
        if name in self._allowed:
            return True
        if self._claim is not None and not self._claim(name):
            return False
        self._allowed.add(name)
        return True

    def write_text(self, rel: str, content: str) -> None:
        """Create or overwrite ``rel`` with ``content`` (parent folders are created)."""
        real, name = self._writable(rel)
        if real.is_dir():
            raise SandboxError(f"{name}: is a directory, cannot write it as a file")
        if real.exists() and not real.is_file():  # opening a FIFO for writing blocks
            raise SandboxError(f"{name}: not a regular file")
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a symlink planted after resolve() is refused, not followed.
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
        except OSError as exc:
            raise SandboxError(f"{name}: cannot write ({exc.strerror or exc})") from None
        self._touched.add(name)

    def edit(self, rel: str, old: str, new: str) -> None:
        """Replace the one occurrence of ``old`` in ``rel`` by ``new``."""
        real = self.resolve(rel)
        name = self._relative(real)
        if not old:
            raise EditError(f"{name}: old text is empty; give the exact text to replace")
        text = self.read_text(name, whole=True)
        count = text.count(old)
        if count == 0:
            raise EditTargetMissing(f"{name}: old text not found (it must match exactly, whitespace included)")
        if count > 1:
            raise EditError(
                f"{name}: old text occurs {count} times; include more surrounding text so it is unique"
            )
        self.write_text(name, text.replace(old, new, 1))

    def delete(self, rel: str) -> None:
        """Delete the file ``rel`` (a symlink is removed itself, never its target)."""
        norm = self._lexical(rel)
        link = self.root / norm
        if link.is_symlink():
            parent = self.resolve(posixpath.dirname(norm)) if "/" in norm else self.root
            if not parent.is_dir():
                raise SandboxError(f"{norm}: parent folder is not a directory")
            if norm not in self._allowed:
                if self._claim is not None and not self._claim(norm):
                    raise FileLockedError(f"file_locked: {norm} is held by another task")
                self._allowed.add(norm)
            (parent / link.name).unlink()
            self._touched.add(norm)
            return
        real, name = self._writable(rel)
        if not real.exists():
            raise SandboxError(f"{name}: no such file to delete")
        if real.is_dir():
            raise SandboxError(f"{name}: is a directory; only files can be deleted")
        real.unlink()
        self._touched.add(name)

    def apply(self, op: CreateOp | EditOp | DeleteOp | PatchOp | IntentOp) -> None:
        """Carry out one SIS file operation."""
        if isinstance(op, CreateOp):
            self.write_text(op.path, op.content)
        elif isinstance(op, EditOp):
            self.edit(op.path, op.old_string, op.new_string)
        elif isinstance(op, DeleteOp):
            self.delete(op.path)
        elif isinstance(op, PatchOp):
            self.apply_patch(op.diff, op.path)
        elif isinstance(op, IntentOp):
            raise SandboxError(f"{op.path}: an 'intent' operation needs an LLM implementer")
        else:  # pragma: no cover - the discriminated union has no other members
            raise SandboxError(f"unknown file operation {op!r}")

    def apply_patch(self, diff: str, label: str = "patch") -> None:
        """Apply a unified diff with ``git apply`` after checking every path it touches."""
        if not diff.endswith("\n"):
            diff += "\n"
        for line in diff.splitlines():
            if line.startswith(("new file mode ", "new mode ")) and line.split()[-1] == _SYMLINK_MODE:
                raise SandboxError(f"{label}: patch creates a symbolic link, which is not allowed")
        listed = self._git_apply(["--numstat", "-z"], diff, label)
        paths = _numstat_paths(listed)
        if not paths:
            raise SandboxError(f"{label}: patch touches no file")
        names = []
        for path in paths:
            try:
                names.append(self._writable(path)[1])
            except FileLockedError:
                raise
            except SandboxError as exc:
                raise SandboxError(f"{label}: patch refused: {exc}") from None
        self._git_apply([], diff, label)
        self._touched.update(names)

    def _git_apply(self, options: list[str], diff: str, label: str) -> str:
        try:
            done = subprocess.run(
                ["git", "apply", "--whitespace=nowarn", *options, "-"],
                cwd=self.root,
                input=diff.encode(),
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(f"{label}: git apply failed to run ({exc})") from None
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxError(f"{label}: patch does not apply: {'; '.join(reason[:3]) or 'git apply failed'}")
        return done.stdout.decode(errors="surrogateescape")


def _numstat_paths(listed: str) -> list[str]:
    """Paths from ``git apply --numstat -z``: ``add\\tdel\\tpath\\0`` or ``add\\tdel\\t\\0from\\0to\\0``."""
    paths: list[str] = []
    fields = listed.split("\0")
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if not entry:
            continue
        path = entry.split("\t", 2)[2] if entry.count("\t") >= 2 else entry
        if path == "":  # rename or copy: the next two fields are source and destination
            paths.extend(fields[index : index + 2])
            index += 2
        else:
            paths.append(path)
    return paths
