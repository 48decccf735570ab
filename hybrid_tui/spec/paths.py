"""Lexical checks of repository-relative paths, shared by mission validation and the sandbox.

Room: spec. Pure string work; the sandbox adds the file-system checks (symlinks) on top.
"""

from __future__ import annotations

import posixpath

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


class UnsafePath(ValueError):
    """A path that must not be used inside a repository; the message says why."""


def normalize_repo_path(path: str) -> str:
    """Return ``path`` normalised (``a/./b`` -> ``a/b``) or raise :class:`UnsafePath`.

    Refused: empty, NUL bytes, absolute paths (POSIX or Windows drive), any ``..``
    component, anything under ``.git/``, names longer than the file system allows.
    """
    if not path or not path.strip():
        raise UnsafePath("path is empty")
    if "\x00" in path:
        raise UnsafePath("path contains a NUL byte")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise UnsafePath(f"path is longer than {MAX_PATH_BYTES} bytes")
    text = path.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePath(f"absolute path {path!r} is not allowed; use a path relative to the repository")
    parts = text.split("/")
    if ".." in parts:
        raise UnsafePath(f"path {path!r} escapes the repository with '..'")
    for part in parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise UnsafePath(f"path {path!r} has a name longer than {MAX_NAME_BYTES} bytes")
    norm = posixpath.normpath(text)
    if norm in (".", ""):
        raise UnsafePath(f"path {path!r} names the repository root, not a file")
    if norm == ".git" or norm.startswith(".git/"):
        raise UnsafePath(f"path {path!r} is inside .git/")
    return norm
