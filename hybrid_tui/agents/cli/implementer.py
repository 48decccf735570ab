"""The ``cli`` L3 backend: an external coding agent CLI run in the task's worktree.

Room: agents. Builds the command (:mod:`.command`: a preset or the operator's template),
runs it with :func:`hybrid_tui.workspace.process.run_process` (own session, whole tree killed
when it ends, prompt on stdin or in a file), reads what the CLI reports with its reader
(:mod:`.reports`) while it runs, and asks the sandbox for the worktree's changed files (it
runs no git itself). It never commits: the runtime validates and integrates as for any
backend.

Limits: the dollar cap and the turn limit are handed to the CLI where it takes them
(``{max_cost_usd}``, ``{max_turns}``) and also enforced here: the attempt is stopped as soon
as the CLI's reported spend (or its reported tokens, priced) crosses the cap
(``budget_exhausted``) or its turns pass the limit. An authentication error reported by the
CLI stops it at once (``auth_error``: not retried); a permission denial is an
``agent_error``. Cost and tokens are booked to the model the CLI says it used, and the spend
reported so far goes to ``request.report_spend`` as it grows, so an attempt ended from outside
(the coordinator's attempt clock, a cancel) keeps it. A file written in the user's checkout
while the attempt ran fails it with the path named.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import anyio

from hybrid_tui.agents.anthropic import prompts
from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.agents.cli.command import CommandValues, TemplateError, build_command, check_template, is_agent_scratch
from hybrid_tui.agents.cli.reports import AUTH, BUDGET, PERMISSION, RATE_LIMITED, TURNS, OutputReader, price
from hybrid_tui.spec.models import Usage
from hybrid_tui.vocabulary import RedactingWriter, redact
from hybrid_tui.workspace.process import HeadTailLog, ProcessOutcome, run_process
from hybrid_tui.workspace.validation import GROUP_FILE_SUFFIX
from hybrid_tui.workspace.watch import files_written_since

LOG_CAP_BYTES = 20_000_000  # the attempt log keeps its first and last 10 MB of agent output
TAIL_BYTES = 16_000_000  # the end of stdout kept to read the CLI's final report from
MAX_LINE_BYTES = 8_000_000  # a longer "line" is left to the end-of-output read

CLI_INSTRUCTIONS = """\
You are working in a git worktree of a repository on exactly one task of a Structured \
Implementation Spec (SIS). Make the change in the files of this working directory only, keep \
it minimal, run the validation commands below until they pass, and do not commit: the \
coordinator validates and integrates your work.
"""


def task_prompt(request: ImplementRequest) -> str:
    parts = [CLI_INSTRUCTIONS, prompts.request_block(request.task, [m.task for m in request.batch], {})]
    if request.feedback:
        parts.append(prompts.feedback_block(request.feedback, request.attempt))
    return "\n\n".join(parts) + "\n"


class _Lines:
    """Splits a byte stream into text lines for a reader; a runaway line is skipped, not held."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.pending = bytearray()
        self.overflowed = False

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            cut = self.pending.find(b"\n")
            if cut < 0:
                break
            line = bytes(self.pending[:cut])
            del self.pending[: cut + 1]
            if self.overflowed:
                self.overflowed = False  # the end of a line too long to parse: dropped
                continue
            self.sink(line.decode("utf-8", errors="replace"))
        if len(self.pending) > MAX_LINE_BYTES:
            self.pending.clear()
            self.overflowed = True

    def close(self) -> None:
        if self.pending and not self.overflowed:
            self.sink(self.pending.decode("utf-8", errors="replace"))
        self.pending.clear()


class CliImplementer:
    name = "cli"

    def __init__(self, template: str):
        check_template(template)
        self.template = template.strip()

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
        limits = request.limits
        log_path = Path(request.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        prompt_file = log_path.with_name(f"{log_path.stem}.prompt.md")
        scratch_dir = log_path.with_name(f"{log_path.stem}.agent")  # the CLI's own files, off the worktree
        scratch_dir.mkdir(exist_ok=True)
        prompt = task_prompt(request)
        prompt_file.write_text(prompt, encoding="utf-8")
        validation = request.task.validation
        values = CommandValues(
            prompt_file=str(prompt_file), prompt=prompt, worktree=str(worktree), task_id=request.task.task_id,
            attempt=request.attempt, model=request.model, max_turns=limits.max_turns,
            max_cost_usd=limits.max_cost_usd, max_tokens=limits.max_tokens, timeout_seconds=limits.timeout_seconds,
            scratch_dir=str(scratch_dir), validation_commands=[*validation.commands, *validation.security_checks],
        )

        def fail(failure_type: str, message: str, model: str = request.model, usage: Usage | None = None,
                 cost: float = 0.0, session_id: str = "", retry_after: float | None = None) -> ImplementResult:
            return ImplementResult(
                ok=False, model=model, usage=usage or Usage(), cost_usd=cost, failure_type=failure_type,
                message=redact(message), files_touched=_task_files(request), session_id=session_id,
                retry_after=retry_after,
            )

        try:
            command = build_command(self.template, values)
        except TemplateError as exc:
            return fail("agent_error", str(exc))
        reader: OutputReader = command.reader
        stdout_lines, stderr_lines = _Lines(reader.feed_line), _Lines(reader.feed_stderr_line)
        tail = bytearray()
        tail_dropped = 0
        stderr_tail = bytearray()

        log_file = HeadTailLog(log_path, cap=LOG_CAP_BYTES)
        # The agent needs the API key in its environment; whatever it prints goes through
        # a redactor so the key never reaches the log (stdout and stderr alike).
        log, errors = RedactingWriter(log_file), RedactingWriter(log_file)
        log.write(f"== cli agent · task {request.task.task_id} · attempt {request.attempt}\n$ {command.shown}\n".encode())
        log.flush()

        reported: list[tuple[Usage, float, str | None]] = []

        def report_progress() -> None:
            # The spend the CLI has reported so far goes to the runtime as it grows: an attempt
            # the coordinator's own clock or a cancel ends before the CLI does keeps it.
            if request.report_spend is None:
                return
            report = reader.report
            now = (report.usage, reader.running_cost(request.cost_of, request.model), report.model)
            if (now[0] != Usage() or now[1]) and (not reported or reported[-1] != now):
                reported[:] = [now]
                request.report_spend(*now)

        def on_stdout(chunk: bytes) -> None:
            nonlocal tail_dropped
            log.write(chunk)
            stdout_lines.feed(chunk)
            tail.extend(chunk)
            if len(tail) > TAIL_BYTES:
                tail_dropped += len(tail) - TAIL_BYTES
                del tail[: len(tail) - TAIL_BYTES]
            report_progress()

        def on_stderr(chunk: bytes) -> None:
            errors.write(chunk)
            stderr_lines.feed(chunk)
            stderr_tail.extend(chunk)
            del stderr_tail[:-4000]
            report_progress()

        def should_stop() -> str | None:
            report = reader.report
            if report.error_kind == AUTH:
                return "auth"
            if reader.running_cost(request.cost_of, request.model) > limits.max_cost_usd:
                return "cost"
            if report.turns > limits.max_turns:
                return "turns"
            return None

        since_ns = time.time_ns()
        outcome: ProcessOutcome | None = None
        # The CLI's process group sits next to the log while it runs, as a validation
        # command's does: a coordinator restarted after a crash kills what was left running.
        group_file = log_path.with_name(log_path.name + GROUP_FILE_SUFFIX)
        try:
            outcome = await run_process(
                command.argv, cwd=worktree, env={**os.environ, **request.environment}, timeout=limits.timeout_seconds,
                on_stdout=on_stdout, on_stderr=on_stderr, on_spawn=lambda pgid: group_file.write_text(str(pgid)),
                stdin_data=prompt.encode() if command.prompt_on_stdin else None, should_stop=should_stop,
            )
        except FileNotFoundError:
            return fail("agent_error", f"agent command not found: {command.argv[0]}")
        except OSError as exc:
            return fail("agent_error", f"agent command {command.argv[0]} cannot start: {exc.strerror or exc}")
        finally:
            group_file.unlink(missing_ok=True)
            errors.flush()
            log.flush()
            status = "killed" if outcome is None or outcome.exit_code is None else outcome.exit_code
            log.write(f"\n== exit status {status}\n".encode())
            log.flush()
            log_file.close()
        stdout_lines.close()
        stderr_lines.close()
        reader.finish(redact(tail.decode("utf-8", errors="replace")), complete=tail_dropped == 0)
        report = reader.report
        model = report.model or request.model
        cost = report.cost_usd if report.cost_usd is not None else price(request.cost_of, model, report.usage, request.model)
        outside = await anyio.to_thread.run_sync(self._written_outside, request, since_ns)

        def failed(failure_type: str, message: str, retry_after: float | None = None) -> ImplementResult:
            return fail(failure_type, message, model, report.usage, cost, report.session_id, retry_after)

        cli_error = report.error.strip()[:500]
        last_stderr = _last_line(stderr_tail)
        if outcome.stopped == "auth" or report.error_kind == AUTH:
            return failed("auth_error", f"the agent CLI could not authenticate: {cli_error or last_stderr}")
        if outside:
            shown = ", ".join(str(p) for p in outside[:5]) + (" …" if len(outside) > 5 else "")
            return failed("agent_error", f"the agent CLI wrote outside its worktree: {shown}")
        if outcome.stopped == "cost":
            return failed("budget_exhausted", f"cost limit ${limits.max_cost_usd:.4f} reached (the agent CLI had spent "
                                              f"${cost:.4f}); stopped")
        if outcome.stopped == "turns":
            return failed("agent_error", f"turn limit {limits.max_turns} reached; stopped")
        if outcome.timed_out:
            return failed("timeout", f"agent command timed out after {limits.timeout_seconds:g}s"
                          + (f" (its last error: {cli_error})" if cli_error else ""))
        if report.error_kind == BUDGET or cost > limits.max_cost_usd:
            return failed("budget_exhausted", f"cost limit ${limits.max_cost_usd:.4f} reached (the agent CLI spent "
                                              f"${cost:.4f})" + (f": {cli_error}" if cli_error else ""))
        if report.error_kind == TURNS:
            return failed("agent_error", f"turn limit {limits.max_turns} reached: {cli_error}")
        if report.error_kind == RATE_LIMITED:
            return failed("rate_limited", f"the agent CLI was rate limited: {cli_error}")
        if report.error_kind == PERMISSION:
            return failed("agent_error", f"the agent CLI was refused: {cli_error}")
        if report.error_kind is not None:
            return failed("agent_error", f"agent reported an error: {cli_error or 'error'}")
        if outcome.exit_code != 0:
            detail = cli_error or last_stderr
            return failed("agent_error", f"agent command exited with status {outcome.exit_code}"
                          + (f": {detail}" if detail else " (see the attempt log)"))
        return ImplementResult(
            ok=True, model=model, usage=report.usage, cost_usd=cost, summary=redact(report.summary)[:2000],
            files_touched=_task_files(request), session_id=report.session_id,
        )

    @staticmethod
    def _written_outside(request: ImplementRequest, since_ns: int) -> list[Path]:
        worktree = Path(request.sandbox.root) if request.sandbox is not None else None
        skip = [p for p in (worktree, *request.unwatched_roots) if p is not None]
        found: list[Path] = []
        for root in request.protected_roots:
            found += files_written_since(Path(root), since_ns, skip=skip)
        return found


def _task_files(request: ImplementRequest) -> list[str]:
    """The worktree's changed files without the CLI's own scratch files (aider's history and
    tag cache, Claude's .claude/): the integration takes the files an attempt reports, and
    these must never land. A scratch-looking file the task declares is kept."""
    assert request.sandbox is not None
    declared = set(request.task.declared_files)
    return [path for path in request.sandbox.changed_files() if path in declared or not is_agent_scratch(path)]


def _last_line(data: bytearray) -> str:
    lines = [line.strip() for line in redact(data.decode("utf-8", errors="replace")).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def make_implementer(config: Any = None) -> CliImplementer:
    """The ``cli`` backend's implementer from ``[agents] cli`` (a Mission or its MissionFile)."""
    mission_file = getattr(config, "config", config)
    template = getattr(getattr(mission_file, "agents", None), "cli", None)
    if not template:
        raise ValueError('the cli backend needs [agents] cli = "<preset or command template>" in mission.toml')
    return CliImplementer(template)
