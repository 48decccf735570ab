"""A worktree's ``[workspace] setup``: the project's own preparation (a venv, ``npm ci``),
run as real shell commands with the workspace environment, a timeout and a log.

Room: workspace. Runs subprocesses in the folder it is given; knows nothing of git (the
worktree that calls it decides what to keep), so a run with git off never loads GitPython
to name its failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from hybrid_tui.spec.models import WorkspaceSection
from hybrid_tui.workspace.validation import GROUP_FILE_SUFFIX, child_environment, workspace_environment

__all__ = ["SetupFailed", "run_setup"]


class SetupFailed(Exception):
    """A ``[workspace] setup`` command failed: an ``environment_error``, never the agent's."""

    @property
    def reason(self) -> str:
        """The message without its ``environment_error:`` prefix, for an attempt whose failure
        type already says so (it read "environment_error: environment_error: setup of ...")."""
        return str(self).removeprefix("environment_error: ")


def run_setup(workspace: WorkspaceSection, root: Path, log_path: Path, *, what: str) -> None:
    """Run ``[workspace] setup`` in ``root``, one command after another, each with the
    workspace environment and the setup timeout, output appended to ``log_path``.
    :class:`SetupFailed` names the first command that fails."""
    env = child_environment(workspace_environment(root, workspace.path, workspace.env))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    group_file = log_path.with_name(log_path.name + GROUP_FILE_SUFFIX)
    for command in workspace.setup:
        with open(log_path, "ab") as log:
            log.write(f"$ {command}\n".encode())
            log.flush()
            # Its own session: a timeout kills everything the command started.
            process = subprocess.Popen(["bash", "-c", command], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            # Named next to the log while it runs, as validation's are: a coordinator killed
            # meanwhile leaves it running, and its successor kills it (kill_orphaned_checks).
            group_file.write_text(str(process.pid))
            try:
                code = process.wait(timeout=workspace.setup_timeout_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise SetupFailed(
                    f"environment_error: {what}: [workspace] setup command {command!r} timed out after "
                    f"{workspace.setup_timeout_seconds:g} s (log: {log_path})"
                ) from None
            finally:
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # nothing it started outlives it
                except (ProcessLookupError, PermissionError):
                    pass
                group_file.unlink(missing_ok=True)
        if code != 0:
            raise SetupFailed(
                f"environment_error: {what}: [workspace] setup command {command!r} exited {code} (log: {log_path})"
            )
