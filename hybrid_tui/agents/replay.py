"""The ``replay`` backend: offline planning and implementing from a mission's recordings.

Room: agents. Touches files only through the request's sandbox; never the store or git.

- :class:`ReplayPlanner` returns the SIS recorded in the mission (``sis/*.json``).
- :class:`ReplayImplementer` applies the file operations of the recorded attempt for this
  attempt number (``replay/*.json``) or, without a recording, the task's SIS file
  operations. A recorded ``failure_type`` is replayed as that failure without touching
  any file. An attempt whose cost exceeds the request's dollar limit stops at its cap
  (``budget_exhausted``, no file touched). Validation is not run here: the runtime runs it
  for real afterwards, so a recorded bad edit fails validation for real.
- A batched attempt (``request.batch``) replays each member's own recording (or SIS
  operations) in turn, in the one sandbox, and reports each member's result in ``per_task``:
  its recorded usage and cost minus the shared context it did not load again (every member
  but the first saves ``min(shared_context_tokens, its input tokens)`` input tokens, priced
  at its model's input rate).
"""

from __future__ import annotations

import time

import anyio

from hybrid_tui.spec.models import RecordedAttempt, Usage
from hybrid_tui.agents.base import ImplementRequest, ImplementResult, PlanRequest, PlanResult
from hybrid_tui.agents.batching import implement_each, price_or_zero
from hybrid_tui.agents.fileops import FileOperationError, apply_file_operations
from hybrid_tui.agents.limits import stop_at_cap


class ReplayPlanner:
    name = "replay"

    async def plan(self, request: PlanRequest) -> PlanResult:
        if request.recorded_sis is None:
            return PlanResult(
                ok=False,
                model=request.model,
                failure_type="agent_error",
                message=f"issue {request.issue_id}: no recorded SIS in the mission to replay",
            )
        return PlanResult(ok=True, model=request.model, sis=request.recorded_sis)


class ReplayImplementer:
    """Replays recorded attempts. ``pace`` scales recorded durations (0 = instant)."""

    name = "replay"

    def __init__(self, pace: float = 0.0):
        self.pace = pace

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        if request.batch:
            return await implement_each(self.implement, request)
        started = time.monotonic()
        recorded = request.recorded
        model = (recorded.model if recorded and recorded.model else None) or request.model
        usage = recorded.usage if recorded else _estimated_usage(request)
        cost = recorded.cost_usd if recorded and recorded.cost_usd is not None else price_or_zero(request, model, usage)
        if self.pace > 0:
            # Recorded duration, else the SIS estimate: --pace makes a demo move watchably.
            seconds = recorded.duration_seconds if recorded and recorded.duration_seconds else (
                request.task.estimated_duration_minutes * 60
            )
            await anyio.sleep(seconds * self.pace)
        if recorded and recorded.failure_type:
            return ImplementResult(
                ok=False,
                model=model,
                usage=usage,
                cost_usd=cost,
                failure_type=recorded.failure_type,
                message=recorded.summary or f"recorded {recorded.failure_type}",
                duration_seconds=_duration(recorded, started),
            )
        stop = stop_at_cap(request.limits, usage, cost)
        if stop is not None:  # the attempt would spend past its own cap: it stops there, no work done
            return ImplementResult(
                ok=False,
                model=model,
                usage=stop.usage,
                cost_usd=stop.cost_usd,
                failure_type="budget_exhausted",
                message=stop.message,
                duration_seconds=_duration(recorded, started),
            )
        operations = recorded.file_operations if recorded else request.task.file_operations
        try:
            touched = await anyio.to_thread.run_sync(apply_file_operations, request.sandbox, operations)
        except FileOperationError as exc:
            return ImplementResult(
                ok=False,
                model=model,
                usage=usage,
                cost_usd=cost,
                failure_type=exc.failure_type,
                message=str(exc),
                duration_seconds=_duration(recorded, started),
            )
        return ImplementResult(
            ok=True,
            model=model,
            usage=usage,
            cost_usd=cost,
            summary=(recorded.summary if recorded else "") or f"applied {len(operations)} file operation(s)",
            files_touched=touched,
            duration_seconds=_duration(recorded, started),
        )


def _estimated_usage(request: ImplementRequest) -> Usage:
    est = request.task.estimated_tokens
    return Usage(input_tokens=est.input, output_tokens=est.output)


def _duration(recorded: RecordedAttempt | None, started: float) -> float:
    if recorded and recorded.duration_seconds:
        return recorded.duration_seconds
    return time.monotonic() - started
