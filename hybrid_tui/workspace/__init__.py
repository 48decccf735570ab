"""Git worktrees, the integration queue, rollback, sandboxed file access and validation runs.

Room: workspace. Decides nothing about what runs next.

The names below are loaded on first use: a run with git off (and every command that only
needs validation) does not pay for importing GitPython.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "BranchMoved": "git",
    "IntegrationResult": "git",
    "MissionError": "git",
    "MissionRepo": "git",
    "CascadeResult": "git",
    "RollbackResult": "git",
    "prepare_repository": "git",
    "EditError": "sandbox",
    "FileLockedError": "sandbox",
    "Sandbox": "sandbox",
    "SandboxError": "sandbox",
    "ChecksResult": "validation",
    "CommandResult": "validation",
    "run_checks": "validation",
    "PatchRejected": "patches",
    "check_and_apply": "patches",
    "checkout_base": "patches",
    "make_patch": "patches",
    "SetupFailed": "setup",
    "run_setup": "setup",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
