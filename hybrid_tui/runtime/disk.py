"""A full disk, recognised: ENOSPC from the store (SQLite "database or disk is full"), the
log and event files, and git.

Room: runtime. Pure: an exception in, a one-line reason out. What the run does about it
(interrupt what ran, leave the run paused) is ``recovery.pause_stopped_run``.
"""

from __future__ import annotations

import errno
import os

DISK_FULL_PREFIX = "disk full"
UNWRITABLE_PREFIX = "cannot write"
_UNWRITABLE_ERRNOS = (errno.EPERM, errno.EACCES, errno.EROFS)
_UNWRITABLE_TEXT = ("attempt to write a readonly database", "readonly database")
_DISK_FULL_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded")


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """``exc``'s causes and, through exception groups (a task group's), every exception inside."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(exception_leaves(inner))
        return out
    chain = [exc]
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        chain.append(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return chain


def disk_full_reason(exc: BaseException) -> str | None:
    """A clear one-line reason when ``exc`` (or an exception inside it) is a full disk."""
    for leaf in exception_leaves(exc):
        if isinstance(leaf, OSError) and leaf.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {leaf.filename}" if getattr(leaf, "filename", None) else ""
            return f"{DISK_FULL_PREFIX}{where}: {os.strerror(leaf.errno)}"
        text = str(leaf)
        if any(marker in text.lower() for marker in _DISK_FULL_TEXT):
            first = text.strip().splitlines()[0] if text.strip() else type(leaf).__name__
            return f"{DISK_FULL_PREFIX}: {type(leaf).__name__}: {first[:300]}"
    return None


def unwritable_reason(exc: BaseException) -> str | None:
    """A clear one-line reason when ``exc`` is a file the run must write that refuses writes
    (made immutable or read-only while the run went, a read-only mount)."""
    for leaf in exception_leaves(exc):
        if isinstance(leaf, OSError) and leaf.errno in _UNWRITABLE_ERRNOS:
            # A write on an open file descriptor names no file: the run folder's files it is.
            where = leaf.filename or "a file of the run folder"
            return f"{UNWRITABLE_PREFIX} {where}: {os.strerror(leaf.errno)}"
        text = str(leaf).lower()
        if any(marker in text for marker in _UNWRITABLE_TEXT):
            return f"{UNWRITABLE_PREFIX} the store: {type(leaf).__name__}: {str(leaf).strip()[:300]}"
    return None
