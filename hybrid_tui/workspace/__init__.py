"""Git worktrees, the integration queue, rollback, sandboxed file access and validation runs.

Room: workspace. Decides nothing about what runs next.
"""

from .git import BranchMoved, IntegrationResult, MissionError, MissionRepo, RollbackResult, prepare_repository
from .sandbox import EditError, FileLockedError, Sandbox, SandboxError
from .validation import ChecksResult, CommandResult, run_checks

__all__ = [
    "BranchMoved",
    "ChecksResult",
    "CommandResult",
    "EditError",
    "FileLockedError",
    "IntegrationResult",
    "MissionError",
    "MissionRepo",
    "RollbackResult",
    "Sandbox",
    "SandboxError",
    "prepare_repository",
    "run_checks",
]
