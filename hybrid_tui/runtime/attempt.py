"""One attempt's life: reset its worktree -> implement -> validate -> queue for integration.

Room: runtime. Git and validation run in worker threads or subprocesses. The attempt reads
the run through its :class:`~hybrid_tui.runtime.context.RunContext` and talks to the loop
only through :class:`~hybrid_tui.runtime.context.AttemptLoop` (finish, advance its phase,
claim a file, queue its integration, its limits): every outcome is stored by the loop
(store first), never kept only in memory.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import anyio.from_thread

from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.runtime.context import AttemptLoop, RunContext, RunningAttempt
from hybrid_tui.runtime.disk import disk_full_reason
from hybrid_tui.runtime.faults import crash_point
from hybrid_tui.runtime.record import recorded_attempt
from hybrid_tui.spec.models import SisTask, Usage
from hybrid_tui.store import writes
from hybrid_tui.workspace.sandbox import Sandbox
from hybrid_tui.workspace.setup import SetupFailed
from hybrid_tui.workspace.validation import run_checks


class _Cancelled(Exception):
    """The scheduler cancelled the task between two steps of the attempt."""


async def implement(ctx: RunContext, request: ImplementRequest, model: str) -> ImplementResult:
    """The implementer's result; a backend bug becomes an ``agent_error`` result, not a
    coordinator crash (a full disk still raises: it pauses the run, it is not the agent's fault)."""
    try:
        return await ctx.implementer.implement(request)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        if disk_full_reason(exc):
            raise
        return ImplementResult(ok=False, model=model, failure_type="agent_error", message=f"{type(exc).__name__}: {exc}")


def users_folders(ctx: RunContext) -> tuple[Path, ...]:
    """The folders of the user's an agent CLI must not write in: the repository the run works
    on and, when the run works on a copy of it (a plain folder, a monorepo's package), the
    folder the mission names."""
    if ctx.repo is None:
        return ()
    named = getattr(ctx.mission, "repo_path", None)
    folders = [Path(ctx.repo.repo_path), *([Path(named).resolve()] if named is not None else [])]
    return tuple(dict.fromkeys(folders))


def held_files_message(refused: list[str]) -> str:
    """The failure message of an attempt whose undeclared files other tasks hold (file_locked)."""
    more = " …" if len(refused) > 5 else ""
    return f"file_locked: {', '.join(refused[:5])}{more} held by another task"


def _claim(loop: AttemptLoop, task_id: str, path: str) -> bool:
    """Sandbox callback for an undeclared file: runs the lock request on the loop thread."""
    try:
        return anyio.from_thread.run_sync(loop.claim_file, task_id, path)
    except RuntimeError:  # already on the loop thread (an async backend calling the sandbox)
        return loop.claim_file(task_id, path)


async def run_attempt(
    ctx: RunContext, loop: AttemptLoop, attempt: RunningAttempt, spec: SisTask, model: str, log_path: Path,
    feedback: str,
) -> None:
    task_id, agent_id = attempt.task_id, attempt.agent_id
    timeout = ctx.config.agents.attempt_timeout_seconds
    crash_point("dispatch", task_id)
    result: ImplementResult | None = None
    # What the backend reported as billed so far: stored when the deadline or a cancel ends
    # the attempt before the backend returned its result (the API billed those turns).
    spent: ImplementResult | None = None

    def report_spend(usage: Usage, cost_usd: float, used_model: str | None = None) -> None:
        nonlocal spent
        spent = ImplementResult(ok=False, model=used_model or model, usage=usage, cost_usd=cost_usd)
        attempt.cost_usd, attempt.usage = cost_usd, usage  # for a stop that interrupts the attempt
        # Stored as it is billed (once per API turn, seconds apart): a coordinator killed
        # mid-attempt leaves it on the row that recovery marks interrupted.
        with ctx.transaction():
            writes.record_attempt_spend(ctx.store, ctx.run_id, attempt.task_id, attempt.number, usage, cost_usd)

    validated = False
    stepped_to_integrating = False  # validating -> integrating (-> end) stored in one go
    # One cancel scope per attempt carries both the scheduler's cancel and the timeout (the
    # coordinator's AttemptClock cancels it past the limit, counted in time the coordinator
    # ran): a cancel the scope caught with no cancelled_reason set came from the time limit.
    scope = attempt.scope
    try:
        with scope:
            sandbox = None
            worktree = ctx.agents.get(agent_id, "")
            environment: dict[str, str] = {}
            if ctx.repo is not None:
                try:
                    # Runs the slot's [workspace] setup the first time: a failure is the
                    # project's environment, not the agent's (no retry; the run pauses).
                    await anyio.to_thread.run_sync(ctx.repo.reset, agent_id)
                except SetupFailed as exc:
                    loop.finish_attempt(attempt, outcome="failed", failure_type="environment_error", message=exc.reason)
                    return
                environment = ctx.repo.environment(agent_id)
                sandbox = Sandbox(
                    Path(worktree), declared=spec.declared_files, claim=functools.partial(_claim, loop, task_id)
                )
            request = ImplementRequest(
                run_id=ctx.run_id,
                task=spec,
                attempt=attempt.number,
                agent_id=agent_id,
                model=model,
                sandbox=sandbox,  # type: ignore[arg-type]  # None in git-off mode
                log_path=log_path,
                cost_of=ctx.pricing.cost,
                limits=loop.limits(task_id),
                feedback=feedback,
                recorded=recorded_attempt(ctx.mission, ctx.run_id, task_id, attempt.number),
                memory_cap_mb=ctx.config.policies.task_memory_cap_mb,
                # An agent CLI works outside the sandbox: its writes in the user's checkout are
                # looked for after the attempt (the run folder may sit inside the checkout).
                protected_roots=users_folders(ctx),
                unwatched_roots=(ctx.repo.run_dir,) if ctx.repo is not None else (),
                report_spend=report_spend,
                environment=environment,
            )
            result = await implement(ctx, request, model)
            attempt.cost_usd = result.cost_usd
            crash_point("implemented", task_id)
            if not result.ok:
                loop.finish_attempt(
                    attempt,
                    # a worker's lapsed lease: the attempt did not really happen
                    outcome="interrupted" if result.failure_type == "interrupted" else "failed",
                    failure_type=result.failure_type or "agent_error",
                    message=result.message,
                    result=result,
                    retry_after=result.retry_after,
                )
                return
            if sandbox is not None:
                # An agent CLI writes past the sandbox: an undeclared file it changed needs its
                # lock as a sandbox write does (it landed, and the task declaring the file
                # failed with git_conflict). Held by another task: file_locked, retried.
                refused = [name for name in result.files_touched if not sandbox.allows(name)]
                if refused:
                    loop.finish_attempt(attempt, outcome="failed", failure_type="file_locked", result=result,
                                        message=held_files_message(refused))
                    return
            if ctx.repo is not None and spec.validation.commands and result.usage is not None and result.cost_usd:
                # Stored before validation (seconds to minutes of subprocesses): a coordinator
                # killed meanwhile left the interrupted row at $0, though the agent (a CLI
                # reports only at its end) had said what it spent.
                report_spend(result.usage, result.cost_usd, result.model)
            if ctx.repo is not None:
                # What lands is fixed now, before validation runs: only the files the agent
                # changed, never what a validation command writes.
                # Every backend reports its files: none reported is nothing to land (an agent
                # CLI's own scratch files, left when it found nothing to change, are not work).
                touched = sorted(set(result.files_touched) | (sandbox.touched if sandbox is not None else set()))
                await anyio.to_thread.run_sync(ctx.repo.stage_work, agent_id, touched)
            if not (ctx.repo is not None and spec.validation.commands):
                # No checks to run: validating, integrating and (git off) the attempt's end
                # follow each other with no side effect between them, so they are stored
                # in one transaction (each transition and its event still recorded); git
                # off, that is the loop's next settle, with the other attempts' ends.
                if attempt.cancelled_reason:
                    raise _Cancelled
                crash_point("validation", task_id)
                if ctx.repo is None:
                    loop.finish_unchecked(attempt, result)
                    return
                loop.advance(task_id, "validating", "integrating")
                stepped_to_integrating = True
            else:
                if not loop.advance(task_id, "validating"):
                    raise _Cancelled
                crash_point("validation", task_id)
                checks = await run_checks(spec.validation, Path(worktree), log_path=log_path,
                                          memory_cap_mb=ctx.config.policies.task_memory_cap_mb, env=environment)
                if not checks.ok:
                    loop.finish_attempt(
                        attempt,
                        outcome="failed",
                        failure_type=checks.failure_type or "validation_failed",
                        message=checks.message,
                        result=result,
                    )
                    return
                validated = True
        if scope.cancelled_caught and not attempt.cancelled_reason:
            raise TimeoutError  # the deadline, not the scheduler, cancelled the attempt
        if stepped_to_integrating:
            if ctx.repo is not None:
                await loop.enqueue_integration(attempt, spec.title, result)  # type: ignore[arg-type]
            return
    except _Cancelled:
        pass
    except TimeoutError:
        loop.finish_attempt(
            attempt,
            outcome="failed",
            failure_type="timeout",
            message=f"attempt exceeded agents.attempt_timeout_seconds={timeout:g}",
            result=result or spent,
        )
        return
    if attempt.cancelled_reason or not validated:
        loop.finish_attempt(attempt, outcome="cancelled", result=result or spent)
        return
    if not loop.advance(task_id, "integrating"):
        loop.finish_attempt(attempt, outcome="cancelled", result=result)
        return
    if ctx.repo is None:  # git off: nothing to integrate
        loop.finish_attempt(attempt, outcome="succeeded", result=result)
        return
    await loop.enqueue_integration(attempt, spec.title, result)  # type: ignore[arg-type]
