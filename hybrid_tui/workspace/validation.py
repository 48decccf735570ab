"""Run a task's validation commands as real subprocesses, with a timeout and a memory cap.

Room: workspace. Spawns ``bash -c <command>`` in a worktree through
:func:`hybrid_tui.workspace.process.run_process`: each in its own session, its whole process
tree (forked grandchildren and ``setsid`` daemons included) killed when it ends for any reason
(exit, timeout, memory cap, the caller's anyio scope cancelled). Secrets are stripped from
the child's environment so they can never reach a validation log.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import psutil

from hybrid_tui.spec.models import Validation
from hybrid_tui.workspace.process import HeadTailBuffer, run_process
from hybrid_tui.vocabulary import RedactingWriter, redact, secret_env_names

__all__ = [
    "ChecksResult", "CommandResult", "child_environment", "environment_problem", "kill_orphaned_checks",
    "run_checks", "workspace_environment",
]



@dataclass
class CommandResult:
    command: str
    exit_code: int | None  # None when killed before it exited on its own
    duration_s: float
    timed_out: bool = False
    killed_for_memory: bool = False


@dataclass
class ChecksResult:
    ok: bool
    failure_type: str | None  # 'validation_failed' | 'environment_error' | 'timeout' | 'resource_exhausted'
    output: str  # capped; the full output is in the log file
    commands: list[CommandResult] = field(default_factory=list)
    problem: str | None = None  # an environment_error's one-line reason ("'cmd' exited 127: ...")

    @property
    def message(self) -> str:
        """The attempt's failure message: an environment problem's reason first (the run's
        pause names it), then the output."""
        return f"{self.problem}\n{self.output}" if self.problem else self.output


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` overlaid with ``env``, without the secret variables
    (:func:`~hybrid_tui.vocabulary.secret_env_names`).

    The user's environment as it is: hybrid-tui's own interpreter is not put on ``PATH``
    (a project's commands must find the project's tools, declared in ``[workspace]``)."""
    merged = dict(os.environ)
    if env:
        merged.update(env)
    for name in secret_env_names():
        merged.pop(name, None)
    return merged


def workspace_environment(
    root: Path, path: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What a worktree's commands (setup, agent CLI, validation) get on top of the user's
    environment: ``[workspace] env``, and the ``[workspace] path`` folders (relative to the
    worktree ``root``) first on ``PATH``."""
    overlay = dict(env or {})
    if path:
        base_path = overlay.get("PATH", os.environ.get("PATH", ""))
        folders = [str(Path(root) / folder) for folder in path]
        overlay["PATH"] = os.pathsep.join([*folders, base_path]).rstrip(os.pathsep)
    return overlay


# `python -m pytest` with no pytest prints "<interpreter>: No module named pytest" (runpy):
# the interpreter cannot import the runner itself, which no change to the code can fix.
_MISSING_RUNNER = re.compile(rb"^\S*python[0-9.]*: No module named ([\w.]+)\s*$", re.MULTILINE)
# bash's codes for "found but not executable" and "command not found".
_ENVIRONMENT_EXIT_CODES = {126: "is not executable", 127: "was not found"}


def environment_problem(command: str, exit_code: int | None, output: bytes) -> str | None:
    """Why a failed command is a problem of the environment rather than of the code, or None."""
    if exit_code in _ENVIRONMENT_EXIT_CODES:
        return f"environment_error: {command!r} exited {exit_code}: its program {_ENVIRONMENT_EXIT_CODES[exit_code]}"
    missing = _MISSING_RUNNER.search(output)
    if exit_code not in (0, None) and missing:
        module = missing.group(1).decode(errors="replace")
        return f"environment_error: {command!r}: the interpreter has no module {module!r} (declare it in [workspace] setup)"
    return None


GROUP_FILE_SUFFIX = ".pgid"


def kill_orphaned_checks(logs_dir: Path) -> list[int]:
    """Kill the validation process groups a crashed coordinator left running.

    ``run_checks`` writes ``<log>.pgid`` while a command runs and removes it when the
    command is done, so any such file found at start-up names an orphan. A group whose
    leader was started after the file was written is someone else's (a reused pid): left
    alone. Returns the group ids killed.
    """
    killed: list[int] = []
    for group_file in sorted(Path(logs_dir).glob(f"*{GROUP_FILE_SUFFIX}")):
        try:
            pgid = int(group_file.read_text().strip())
            written = group_file.stat().st_mtime
        except (OSError, ValueError):
            group_file.unlink(missing_ok=True)
            continue
        try:
            leader_started = psutil.Process(pgid).create_time()
        except psutil.NoSuchProcess:
            leader_started = None  # the leader is gone; its group may live on
        if leader_started is None or leader_started <= written + 1:
            try:
                os.killpg(pgid, signal.SIGKILL)
                killed.append(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        group_file.unlink(missing_ok=True)
    return killed


async def run_checks(
    validation: Validation,
    cwd: Path,
    *,
    log_path: Path | None = None,
    memory_cap_mb: int | None = None,
    env: dict | None = None,
    output_cap_bytes: int = 64_000,
    log_cap_bytes: int = 50_000_000,
    on_spawn: Callable[[int], None] | None = None,
) -> ChecksResult:
    """Run ``validation.commands`` then ``validation.security_checks`` in ``cwd``; all must exit 0.

    The timeout covers the whole set. Commands stop at the first failure. ``env`` is laid
    over the current environment (secrets removed). ``on_spawn(pid)`` is called with each
    command's process (group) id, e.g. to record it for crash recovery. The log keeps the
    output in full up to ``log_cap_bytes`` (a runaway command must not fill the disk before
    its timeout), then notes what it dropped.
    """
    commands = [*validation.commands, *validation.security_checks]
    # Each command's process group id sits next to its log while it runs, so a coordinator
    # restarted after a SIGKILL can find and kill what its predecessor left running.
    group_file = log_path.with_name(log_path.name + GROUP_FILE_SUFFIX) if log_path is not None else None

    def spawned(pgid: int) -> None:
        if group_file is not None:
            group_file.write_text(str(pgid))
        if on_spawn is not None:
            on_spawn(pgid)
    output = HeadTailBuffer(output_cap_bytes)
    results: list[CommandResult] = []
    child_env = child_environment(env)
    deadline = time.monotonic() + validation.timeout_seconds
    log: RedactingWriter | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # A command may print a secret it found (a .env file, its parent's environment).
        log = RedactingWriter(open(log_path, "ab"))

    log_room = log_cap_bytes

    def emit(data: bytes) -> None:
        nonlocal log_room
        output.add(data)
        if log is None or log_room <= 0:
            return
        log.write(data[:log_room])
        log_room -= len(data)
        if log_room <= 0:
            log.write(f"\n[log capped at {log_cap_bytes} bytes; further output dropped]\n".encode())
        log.flush_lines()

    failure: str | None = None
    problem: str | None = None
    try:
        for command in commands:
            emit(f"$ {command}\n".encode())
            command_tail = HeadTailBuffer(8192)  # enough to recognise an environment problem

            def emit_command(data: bytes, tail: HeadTailBuffer = command_tail) -> None:
                tail.add(data)
                emit(data)

            result = await _run_one(command, Path(cwd), child_env, deadline, memory_cap_mb, emit_command, spawned)
            results.append(result)
            if result.timed_out:
                emit(f"[timed out after {validation.timeout_seconds:g} s; process tree killed]\n".encode())
                failure = "timeout"
            elif result.killed_for_memory:
                emit(f"[killed: memory above the cap of {memory_cap_mb} MB]\n".encode())
                failure = "resource_exhausted"
            elif result.exit_code != 0:
                emit(f"[exit code {result.exit_code}]\n".encode())
                problem = environment_problem(command, result.exit_code, command_tail.text().encode())
                if problem:
                    emit(f"[{problem}]\n".encode())
                failure = "environment_error" if problem else "validation_failed"
            if failure:
                break
    finally:
        if log is not None:
            log.close()
        if group_file is not None:
            group_file.unlink(missing_ok=True)
    return ChecksResult(ok=failure is None, failure_type=failure, output=redact(output.text()), commands=results,
                        problem=redact(problem.removeprefix("environment_error: ")) if problem else None)


async def _run_one(
    command: str,
    cwd: Path,
    env: dict[str, str],
    deadline: float,
    memory_cap_mb: int | None,
    emit: Callable[[bytes], None],
    on_spawn: Callable[[int], None] | None,
) -> CommandResult:
    # process.run_process owns the containment: own session, the whole tree (setsid'd
    # daemons included) killed when the command ends, no wait on a pipe a leftover holds.
    outcome = await run_process(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        timeout=deadline - time.monotonic(),
        on_stdout=emit,
        memory_cap_bytes=memory_cap_mb * 1024 * 1024 if memory_cap_mb else None,
        on_spawn=on_spawn,
    )
    return CommandResult(command, outcome.exit_code, outcome.duration_s, timed_out=outcome.timed_out,
                         killed_for_memory=outcome.killed_for_memory)
