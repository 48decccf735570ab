"""The ``cli`` L3 backend: an external coding agent command run in the task's worktree.

Room: agents. Writes the task prompt into the attempt's log folder, runs the operator's
command template (``[agents] cli``) with the worktree as its working directory, and asks
the sandbox for the worktree's changed files to report the files it touched (it runs no
git itself). It never commits: the runtime validates and integrates as for any backend.

Template placeholders: ``{prompt_file}`` (path of the prompt), ``{prompt}`` (its text, as
one argument), ``{worktree}``, ``{task_id}``, ``{model}``. The template is split with
``shlex`` and never passed to a shell, so placeholder values cannot inject commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from hybrid_tui.vocabulary import REDACTED, redact, secret_values

import anyio
import psutil

from hybrid_tui.spec.models import Usage
from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.agents.anthropic import prompts

_PLACEHOLDER = re.compile(r"\{(prompt_file|prompt|worktree|task_id|model)\}")
MAX_PARSED_STDOUT = 4_000_000  # JSON output beyond this is logged but not parsed

CLI_INSTRUCTIONS = """\
You are working in a git worktree of a repository on exactly one task of a Structured \
Implementation Spec (SIS). Make the change in the files of this working directory, keep it \
minimal, run the validation commands below until they pass, and do not commit: the \
coordinator validates and integrates your work.
"""


class TemplateError(ValueError):
    """An unusable ``[agents] cli`` template."""


def build_argv(template: str, values: dict[str, str]) -> list[str]:
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise TemplateError(f"[agents] cli: cannot split the command template: {exc}") from None
    if not parts:
        raise TemplateError("[agents] cli: the command template is empty")
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in parts]


def task_prompt(request: ImplementRequest) -> str:
    parts = [CLI_INSTRUCTIONS, prompts.task_block(request.task, {})]
    if request.feedback:
        parts.append(prompts.feedback_block(request.feedback, request.attempt))
    return "\n\n".join(parts) + "\n"


def parse_agent_output(stdout: str) -> dict[str, Any] | None:
    """The agent's JSON report: the whole stdout as one object, else its last JSON-object line."""
    text = stdout.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def usage_of(report: dict[str, Any]) -> Usage:
    raw = report.get("usage")
    if not isinstance(raw, dict):
        return Usage()

    def count(*keys: str) -> int:
        for key in keys:
            value = raw.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return int(value)
        return 0

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens", "cache_read_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens", "cache_write_tokens"),
    )


def reported_cost(report: dict[str, Any]) -> float | None:
    for key in ("total_cost_usd", "cost_usd"):
        value = report.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def _kill_tree(pid: int) -> None:
    """Kill the command and everything it started (it runs in its own process group)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:  # anything that left the group
        try:
            child.kill()
        except psutil.Error:
            pass


class _RedactingLog:
    """Writes an agent's output to the attempt log with credential values replaced. Holds back
    a partial line (up to a bound) so a key split across two reads is still caught."""

    def __init__(self, file: Any, hold_max: int = 65536):
        self.file = file
        self.hold_max = hold_max
        self.secrets = [s.encode() for s in secret_values()]
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        cut = self.pending.rfind(b"\n") + 1
        if not cut and len(self.pending) > self.hold_max:
            cut = len(self.pending) - max((len(s) for s in self.secrets), default=0)
        if cut > 0:
            self._emit(bytes(self.pending[:cut]))
            del self.pending[:cut]

    def flush(self) -> None:
        if self.pending:
            self._emit(bytes(self.pending))
            self.pending.clear()
        self.file.flush()

    def _emit(self, data: bytes) -> None:
        for secret in self.secrets:
            data = data.replace(secret, REDACTED.encode())
        self.file.write(data)


class CliImplementer:
    name = "cli"

    def __init__(self, template: str):
        build_argv(template, dict.fromkeys(("prompt_file", "prompt", "worktree", "task_id", "model"), "x"))
        self.template = template

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        started = time.monotonic()
        result = await self._run(request)
        result.duration_seconds = time.monotonic() - started
        return result

    async def _run(self, request: ImplementRequest) -> ImplementResult:
        if request.sandbox is None:
            return ImplementResult(ok=False, model=request.model, failure_type="agent_error",
                                   message="the cli backend needs a git worktree (not available with --no-git)")
        sandbox = request.sandbox
        worktree = Path(sandbox.root)
        log_path = Path(request.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        prompt_file = log_path.with_name(f"{log_path.stem}.prompt.md")
        prompt = task_prompt(request)
        prompt_file.write_text(prompt, encoding="utf-8")
        argv = build_argv(
            self.template,
            {
                "prompt_file": str(prompt_file),
                "prompt": prompt,
                "worktree": str(worktree),
                "task_id": request.task.task_id,
                "model": request.model,
            },
        )
        timeout = request.limits.timeout_seconds

        def fail(failure_type: str, message: str, usage: Usage = Usage(), cost: float = 0.0) -> ImplementResult:
            return ImplementResult(
                ok=False,
                model=request.model,
                usage=usage,
                cost_usd=cost,
                failure_type=failure_type,
                message=message,
                files_touched=sandbox.changed_files(),
            )

        stdout = bytearray()
        with log_path.open("ab") as log_file:
            # The agent needs the API key in its environment; whatever it prints goes through
            # a redactor so the key never reaches the log (stdout and stderr alike).
            log, errors = _RedactingLog(log_file), _RedactingLog(log_file)
            shown = " ".join(shlex.quote(a) if a != prompt else "{prompt}" for a in argv)
            log.write(f"== cli agent · task {request.task.task_id} · attempt {request.attempt}\n$ {shown}\n".encode())
            log.flush()
            try:
                process = await anyio.open_process(
                    argv,
                    cwd=worktree,
                    env={**os.environ, **request.environment} if request.environment else None,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except FileNotFoundError:
                return fail("agent_error", f"agent command not found: {argv[0]}")
            except OSError as exc:
                return fail("agent_error", f"agent command {argv[0]} cannot start: {exc.strerror or exc}")
            timed_out = False
            try:
                with anyio.move_on_after(timeout) as scope:
                    assert process.stdout is not None and process.stderr is not None

                    async def pump_errors() -> None:
                        async for chunk in process.stderr:
                            errors.write(chunk)

                    async with anyio.create_task_group() as group:
                        group.start_soon(pump_errors)
                        async for chunk in process.stdout:
                            log.write(chunk)
                            if len(stdout) < MAX_PARSED_STDOUT:
                                stdout.extend(chunk)
                    await process.wait()
                timed_out = scope.cancelled_caught
            finally:
                if process.returncode is None:
                    _kill_tree(process.pid)
                    with anyio.CancelScope(shield=True):
                        await process.wait()
                await process.aclose()
                errors.flush()
                log.flush()
            log.write(f"\n== exit status {process.returncode}\n".encode())
            log.flush()

        report = parse_agent_output(redact(stdout.decode("utf-8", errors="replace"))) or {}
        usage = usage_of(report)
        cost = reported_cost(report)
        if cost is None:
            try:
                cost = request.cost_of(request.model, usage) if usage != Usage() else 0.0
            except Exception:  # a model the pricing table does not know: usage still counts
                cost = 0.0
        if timed_out:
            return fail("timeout", f"agent command timed out after {timeout:g}s", usage, cost)
        if process.returncode != 0:
            return fail("agent_error", f"agent command exited with status {process.returncode} (see the attempt log)", usage, cost)
        if report.get("is_error") is True:
            detail = str(report.get("result") or report.get("subtype") or "error")[:300]
            return fail("agent_error", f"agent reported an error: {detail}", usage, cost)
        summary = report.get("result") or report.get("summary") or ""
        return ImplementResult(
            ok=True,
            model=request.model,
            usage=usage,
            cost_usd=cost,
            summary=str(summary)[:2000],
            files_touched=sandbox.changed_files(),
        )


def make_implementer(config: Any = None):
    """The ``cli`` backend's implementer from ``[agents] cli`` (a Mission or its MissionFile)."""
    mission_file = getattr(config, "config", config)
    template = getattr(getattr(mission_file, "agents", None), "cli", None)
    if not template:
        raise ValueError('the cli backend needs [agents] cli = "<command template>" in mission.toml')
    return CliImplementer(template)
