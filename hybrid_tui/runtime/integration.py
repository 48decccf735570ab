"""Where integration happens: a finished attempt's work committed onto the mission branch.

Room: runtime. The body of the loop's ONE integration worker (integrations never run
concurrently): the commit runs in a worker thread (``workspace.git.MissionRepo.integrate``),
and its outcome goes back to the loop as the attempt's end (``AttemptLoop.finish_attempt``),
stored in the loop's next settle transaction.
"""

from __future__ import annotations

from typing import Any

import anyio

from hybrid_tui.runtime.context import AttemptLoop, IntegrationJob, RunContext
from hybrid_tui.runtime.disk import disk_full_reason
from hybrid_tui.runtime.faults import crash_point


async def integrate_job(ctx: RunContext, loop: AttemptLoop, job: IntegrationJob) -> None:
    """One commit on the mission branch, then the attempt's end handed to the loop."""
    attempt = job.attempt
    if attempt.cancelled_reason:  # cancelled while waiting in the queue: never integrate it
        loop.finish_attempt(attempt, outcome="cancelled", result=job.result)
        return
    # Lazy: workspace.git loads GitPython, which a run with git off (no integration) never needs.
    from hybrid_tui.workspace.git import BranchMoved

    try:
        res: Any = await anyio.to_thread.run_sync(ctx.repo.integrate, attempt.agent_id, attempt.task_id, job.title,
                                                 job.tree)
    except BranchMoved as exc:
        # Someone else moved the mission branch: never overwrite it; stop and tell the operator.
        loop.finish_attempt(attempt, outcome="failed", failure_type="git_conflict", message=str(exc), result=job.result)
        loop.policy_pause(str(exc))
        return
    except Exception as exc:
        if disk_full_reason(exc):
            raise  # nothing landed (the branch moves by compare-and-swap): pause the run, retry on resume
        loop.finish_attempt(
            attempt, outcome="failed", failure_type="agent_error", message=f"integration failed: {exc}", result=job.result
        )
        return
    crash_point("integrated", attempt.task_id)  # the commit is on the branch, the store not yet told
    if getattr(res, "conflict", False):
        loop.finish_attempt(
            attempt,
            outcome="failed",
            failure_type="git_conflict",
            message=f"conflict integrating {attempt.task_id}: {res.conflict}",
            result=job.result,
        )
        return
    loop.finish_attempt(attempt, outcome="succeeded", result=job.result, commit=res)
