"""One attempt's life (reset worktree -> implement -> validate -> queue for integration), and
the integration of a finished attempt onto the mission branch.

Room: runtime. Git and validation run in worker threads or subprocesses; every outcome is
written through the coordinator (store first), never kept only in memory.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread

from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.spec.models import SisTask
from hybrid_tui.runtime.faults import crash_point
from hybrid_tui.runtime.monitor import disk_full_reason

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator, IntegrationJob, RunningAttempt


class _Cancelled(Exception):
    """The scheduler cancelled the task between two steps of the attempt."""


def _claim(c: "Coordinator", task_id: str, path: str) -> bool:
    """Sandbox callback for an undeclared file: runs the lock request on the loop thread."""
    try:
        return anyio.from_thread.run_sync(c.claim_file, task_id, path)
    except RuntimeError:  # already on the loop thread (an async backend calling the sandbox)
        return c.claim_file(task_id, path)


async def run_attempt(
    c: "Coordinator", attempt: "RunningAttempt", spec: SisTask, model: str, log_path: Path, feedback: str
) -> None:
    task_id, agent_id = attempt.task_id, attempt.agent_id
    timeout = c.config.agents.attempt_timeout_seconds
    crash_point("dispatch", task_id)
    result: ImplementResult | None = None
    validated = False
    stepped_to_integrating = False  # validating -> integrating (-> end) stored in one go
    # One cancel scope per attempt carries both the scheduler's cancel and the timeout (a
    # second scope from fail_after cost as much as the rest of a git-off attempt): a cancel
    # the scope caught with no cancelled_reason set came from the deadline.
    scope = attempt.scope
    scope.deadline = anyio.current_time() + timeout
    try:
        with scope:
            sandbox = None
            worktree = c.agents.get(agent_id, "")
            if c.repo is not None:
                await anyio.to_thread.run_sync(c.repo.reset, agent_id)
                from hybrid_tui.workspace.sandbox import Sandbox

                sandbox = Sandbox(
                    Path(worktree), declared=spec.declared_files, claim=functools.partial(_claim, c, task_id)
                )
            request = ImplementRequest(
                run_id=c.run_id,
                task=spec,
                attempt=attempt.number,
                agent_id=agent_id,
                model=model,
                sandbox=sandbox,  # type: ignore[arg-type]  # None in git-off mode
                log_path=log_path,
                cost_of=c.cost_of,
                limits=c.limits(task_id),
                feedback=feedback,
                recorded=c.recorded_attempt(task_id, attempt.number),
                memory_cap_mb=c.config.policies.task_memory_cap_mb,
            )
            try:
                result = await c.implementer.implement(request)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:  # a backend bug is an agent_error, not a coordinator crash
                if disk_full_reason(exc):
                    raise  # a full disk pauses the run (Coordinator.run), it is not the agent's fault
                result = ImplementResult(ok=False, model=model, failure_type="agent_error", message=f"{type(exc).__name__}: {exc}")
            attempt.cost_usd = result.cost_usd
            crash_point("implemented", task_id)
            if not result.ok:
                c.finish_attempt(
                    attempt,
                    outcome="failed",
                    failure_type=result.failure_type or "agent_error",
                    message=result.message,
                    result=result,
                    retry_after=result.retry_after,
                )
                return
            if not (c.repo is not None and spec.validation.commands):
                # No checks to run: validating, integrating and (git off) the attempt's end
                # follow each other with no side effect between them, so they are stored
                # in one transaction (each transition and its event still recorded); git
                # off, that is the loop's next settle, with the other attempts' ends.
                if attempt.cancelled_reason:
                    raise _Cancelled
                crash_point("validation", task_id)
                if c.repo is None:
                    c.settle_later(attempt, functools.partial(_end_unchecked, c, attempt, result))
                    return
                with c.transaction():
                    c.advance(task_id, "validating")
                    c.advance(task_id, "integrating")
                stepped_to_integrating = True
            else:
                if not c.advance(task_id, "validating"):
                    raise _Cancelled
                crash_point("validation", task_id)
                checks = await c.run_checks(spec.validation, Path(worktree), log_path)
                if not checks.ok:
                    c.finish_attempt(
                        attempt,
                        outcome="failed",
                        failure_type=checks.failure_type or "validation_failed",
                        message=checks.output,
                        result=result,
                    )
                    return
                validated = True
        if scope.cancelled_caught and not attempt.cancelled_reason:
            raise TimeoutError  # the deadline, not the scheduler, cancelled the attempt
        if stepped_to_integrating:
            if c.repo is not None:
                await c.enqueue_integration(attempt, spec.title, result)  # type: ignore[arg-type]
            return
    except _Cancelled:
        pass
    except TimeoutError:
        c.finish_attempt(
            attempt,
            outcome="failed",
            failure_type="timeout",
            message=f"attempt exceeded agents.attempt_timeout_seconds={timeout:g}",
            result=result,
        )
        return
    if attempt.cancelled_reason or not validated:
        c.finish_attempt(attempt, outcome="cancelled", result=result)
        return
    if not c.advance(task_id, "integrating"):
        c.finish_attempt(attempt, outcome="cancelled", result=result)
        return
    if c.repo is None:  # git off: nothing to integrate
        c.finish_attempt(attempt, outcome="succeeded", result=result)
        return
    await c.enqueue_integration(attempt, spec.title, result)  # type: ignore[arg-type]


def _end_unchecked(c: "Coordinator", attempt: "RunningAttempt", result: ImplementResult) -> None:
    """Git off, no checks: validating -> integrating -> the attempt's end, in the settle
    transaction (a cancel that arrived meanwhile makes it a cancelled end)."""
    if c.advance(attempt.task_id, "validating") and c.advance(attempt.task_id, "integrating"):
        c.settle_attempt(attempt, outcome="succeeded", result=result)
    else:
        c.settle_attempt(attempt, outcome="cancelled", result=result)


async def integrate_job(c: "Coordinator", job: "IntegrationJob") -> None:
    """The integration queue's body: one commit on the mission branch, then the store."""
    attempt = job.attempt
    if attempt.cancelled_reason:  # cancelled while waiting in the queue: never integrate it
        c.finish_attempt(attempt, outcome="cancelled", result=job.result)
        return
    from hybrid_tui.workspace.git import BranchMoved

    try:
        res: Any = await anyio.to_thread.run_sync(c.repo.integrate, attempt.agent_id, attempt.task_id, job.title)
    except BranchMoved as exc:
        # Someone else moved the mission branch: never overwrite it; stop and tell the operator.
        c.finish_attempt(attempt, outcome="failed", failure_type="git_conflict", message=str(exc), result=job.result)
        c.policy_pause(str(exc))
        return
    except Exception as exc:
        if disk_full_reason(exc):
            raise  # nothing landed (the branch moves by compare-and-swap): pause the run, retry on resume
        c.finish_attempt(
            attempt, outcome="failed", failure_type="agent_error", message=f"integration failed: {exc}", result=job.result
        )
        return
    crash_point("integrated", attempt.task_id)  # the commit is on the branch, the store not yet told
    if getattr(res, "conflict", False):
        c.finish_attempt(
            attempt,
            outcome="failed",
            failure_type="git_conflict",
            message=f"conflict integrating {attempt.task_id}: {res.conflict}",
            result=job.result,
        )
        return
    c.finish_attempt(attempt, outcome="succeeded", result=job.result, commit=res)
