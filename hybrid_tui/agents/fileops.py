"""Apply SIS file operations (create/edit/delete/patch) through a sandbox.

Room: agents. Every file access goes through the :class:`~hybrid_tui.workspace.sandbox.Sandbox`
given with the request, which resolves paths inside the worktree and takes locks for
undeclared files. Blocking: call it from a worker thread.
"""

from __future__ import annotations

import subprocess
from typing import Any, Iterable

from ..spec.models import CreateOp, DeleteOp, EditOp, IntentOp, PatchOp


class FileOperationError(Exception):
    """An operation that cannot be applied; ``failure_type`` classifies it for retries."""

    def __init__(self, message: str, failure_type: str = "agent_error"):
        super().__init__(message)
        self.failure_type = failure_type


def apply_file_operations(sandbox: Any, operations: Iterable[Any]) -> list[str]:
    """Apply ``operations`` in order; return the paths touched (first-seen order)."""
    touched: dict[str, None] = {}
    for index, op in enumerate(operations):
        try:
            _apply_one(sandbox, op)
        except FileOperationError:
            raise
        except Exception as exc:  # sandbox refusals, missing files, file locks
            failure = getattr(exc, "failure_type", None)
            if failure is None and type(exc).__name__ in ("FileLocked", "FileLockedError"):
                failure = "file_locked"
            raise FileOperationError(
                f"file operation {index + 1} ({op.op} {op.path}): {exc}", failure or "agent_error"
            ) from exc
        touched.setdefault(op.path, None)
    return list(touched)


def _apply_one(sandbox: Any, op: Any) -> None:
    if isinstance(op, CreateOp):
        sandbox.write_text(op.path, op.content)
    elif isinstance(op, EditOp):
        text = sandbox.read_text(op.path)
        count = text.count(op.old_string)
        if count != 1:
            raise FileOperationError(
                f"edit {op.path}: old_string occurs {count} times (must occur exactly once)"
            )
        sandbox.write_text(op.path, text.replace(op.old_string, op.new_string, 1))
    elif isinstance(op, DeleteOp):
        sandbox.delete(op.path)
    elif isinstance(op, PatchOp):
        _apply_patch(sandbox, op)
    elif isinstance(op, IntentOp):
        # Only an LLM implementer can carry out an intent; offline backends leave the file alone.
        return
    else:  # pragma: no cover - the SIS model is a closed union
        raise FileOperationError(f"unknown file operation {op!r}")


def _apply_patch(sandbox: Any, op: PatchOp) -> None:
    if hasattr(sandbox, "apply_patch"):
        sandbox.apply_patch(op.path, op.diff)
        return
    # The patch must name only op.path: check the target through the sandbox first.
    sandbox.resolve(op.path)
    diff = op.diff if op.diff.endswith("\n") else op.diff + "\n"
    proc = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", f"--include={op.path}", "-"],
        cwd=sandbox.root,
        input=diff.encode(),
        capture_output=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise FileOperationError(f"patch {op.path}: {proc.stderr.decode(errors='replace').strip()}")
