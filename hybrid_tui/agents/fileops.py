"""Apply SIS file operations (create/edit/delete/patch) through a sandbox, for offline backends.

Room: agents. Every file access goes through the request's
:class:`~hybrid_tui.workspace.sandbox.Sandbox`, which resolves paths inside the worktree and
takes locks for undeclared files. Blocking: call it from a worker thread.
"""

from __future__ import annotations

from typing import Any, Iterable

from hybrid_tui.spec.models import IntentOp
from hybrid_tui.workspace.sandbox import EditTargetMissing, FileLockedError


class FileOperationError(Exception):
    """An operation that cannot be applied; ``failure_type`` classifies it for retries."""

    def __init__(self, message: str, failure_type: str = "agent_error"):
        super().__init__(message)
        self.failure_type = failure_type


def apply_file_operations(sandbox: Any, operations: Iterable[Any]) -> list[str]:
    """Apply ``operations`` in order; return the paths touched (first-seen order).

    ``intent`` operations need an LLM implementer: offline backends skip them.
    """
    touched: dict[str, None] = {}
    for index, op in enumerate(operations):
        if isinstance(op, IntentOp):
            continue
        try:
            sandbox.apply(op)
        except FileLockedError as exc:
            raise FileOperationError(f"file operation {index + 1} ({op.op} {op.path}): {exc}", "file_locked") from exc
        except EditTargetMissing as exc:
            # A planned edit no longer applies because an integrated task changed the same
            # text: the two changes conflict, and retrying the same edit cannot help.
            raise FileOperationError(
                f"file operation {index + 1} ({op.op} {op.path}) conflicts with the mission branch: {exc}",
                "git_conflict",
            ) from exc
        except Exception as exc:  # sandbox refusals, missing files, bad edits
            raise FileOperationError(f"file operation {index + 1} ({op.op} {op.path}): {exc}") from exc
        touched.setdefault(op.path, None)
    return list(touched)
