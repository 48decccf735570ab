"""The ``sim`` backend: synthetic planners and implementers for demos, load tests and capacity planning.

Room: agents. Seeded: the same seed, task and attempt give the same latency, usage and
outcome. With ``git=False`` the implementer touches no file at all (load tests without a
repository); with ``git=True`` a successful attempt applies the task's SIS file operations
through the sandbox, so the runtime's validation and integration run for real.
"""

from __future__ import annotations

import random
import time
import zlib

import anyio

from hybrid_tui.spec.models import Sis, SisIssue, SisTask, Usage
from hybrid_tui.agents.base import ImplementRequest, ImplementResult, PlanRequest, PlanResult
from hybrid_tui.agents.batching import implement_each
from hybrid_tui.agents.fileops import FileOperationError, apply_file_operations
from hybrid_tui.agents.limits import stop_at_cap

DEFAULT_FAILURE_MIX: dict[str, float] = {
    "validation_failed": 0.4,
    "network_error": 0.25,
    "agent_error": 0.15,
    "rate_limited": 0.1,
    "timeout": 0.1,
}


def _rng(seed: int, *parts: object) -> random.Random:
    key = "\x1f".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(zlib.crc32(key) ^ (seed << 32))


class SimImplementer:
    """Synthetic implementer.

    - latency: the task's estimated duration (minutes -> seconds) x ``pace``, jittered ±30 %;
      ``pace=0`` is instant. E.g. ``pace=0.05`` turns a 10-minute estimate into ~30 s.
    - usage: the SIS token estimates ±30 %.
    - failures: with probability ``failure_rate`` an attempt fails with a type drawn from
      ``failure_mix`` (weights by failure type).
    """

    name = "sim"

    def __init__(
        self,
        seed: int = 0,
        pace: float = 0.0,
        failure_rate: float = 0.0,
        failure_mix: dict[str, float] | None = None,
        git: bool = True,
        max_latency_seconds: float | None = None,
    ):
        self.seed = seed
        self.pace = pace
        self.failure_rate = failure_rate
        self.failure_mix = dict(failure_mix or DEFAULT_FAILURE_MIX)
        self.git = git
        self.max_latency_seconds = max_latency_seconds

    def latency(self, task: SisTask, attempt: int) -> float:
        if self.pace <= 0:
            return 0.0
        rng = _rng(self.seed, "latency", task.task_id, attempt)
        seconds = task.estimated_duration_minutes * 60 * self.pace * rng.uniform(0.7, 1.3)
        if self.max_latency_seconds is not None:
            seconds = min(seconds, self.max_latency_seconds)
        return seconds

    def usage(self, task: SisTask, attempt: int) -> Usage:
        rng = _rng(self.seed, "usage", task.task_id, attempt)
        est = task.estimated_tokens
        return Usage(
            input_tokens=int(est.input * rng.uniform(0.7, 1.3)),
            output_tokens=int(est.output * rng.uniform(0.7, 1.3)),
        )

    def outcome(self, task: SisTask, attempt: int) -> str | None:
        """The failure type this attempt will report, or None for success."""
        if self.failure_rate <= 0:
            return None
        rng = _rng(self.seed, "outcome", task.task_id, attempt)
        if rng.random() >= self.failure_rate:
            return None
        kinds = list(self.failure_mix)
        return rng.choices(kinds, weights=[self.failure_mix[k] for k in kinds])[0]

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        if request.batch:  # each task of a batch simulated on its own, the shared context paid once
            return await implement_each(self.implement, request)
        started = time.monotonic()
        task, number = request.task, request.attempt
        usage = self.usage(task, number)
        try:
            cost = float(request.cost_of(request.model, usage))
        except Exception:
            cost = 0.0
        delay = self.latency(task, number)
        if delay > 0:
            await anyio.sleep(delay)
        stop = stop_at_cap(request.limits, usage, cost)
        if stop is not None:  # the attempt would spend past its own cap: it stops there, no work done
            return ImplementResult(
                ok=False,
                model=request.model,
                usage=stop.usage,
                cost_usd=stop.cost_usd,
                failure_type="budget_exhausted",
                message=stop.message,
                duration_seconds=time.monotonic() - started,
            )
        failure = self.outcome(task, number)
        if failure is not None:
            return ImplementResult(
                ok=False,
                model=request.model,
                usage=usage,
                cost_usd=cost,
                failure_type=failure,
                message=f"simulated {failure}",
                retry_after=1.0 if failure == "rate_limited" else None,
                duration_seconds=time.monotonic() - started,
            )
        touched: list[str] = []
        if self.git and request.sandbox is not None:
            try:
                touched = await anyio.to_thread.run_sync(
                    apply_file_operations, request.sandbox, task.file_operations
                )
            except FileOperationError as exc:
                return ImplementResult(
                    ok=False,
                    model=request.model,
                    usage=usage,
                    cost_usd=cost,
                    failure_type=exc.failure_type,
                    message=str(exc),
                    duration_seconds=time.monotonic() - started,
                )
        return ImplementResult(
            ok=True,
            model=request.model,
            usage=usage,
            cost_usd=cost,
            summary="simulated implementation",
            files_touched=touched,
            duration_seconds=time.monotonic() - started,
        )


class SimPlanner:
    """Returns the recorded SIS when the mission has one, else one synthetic task per issue."""

    name = "sim"

    def __init__(self, seed: int = 0, pace: float = 0.0):
        self.seed = seed
        self.pace = pace

    async def plan(self, request: PlanRequest) -> PlanResult:
        rng = _rng(self.seed, "plan", request.issue_id)
        usage = Usage(input_tokens=rng.randint(2_000, 6_000), output_tokens=rng.randint(500, 2_000))
        try:
            cost = float(request.cost_of(request.model, usage))
        except Exception:
            cost = 0.0
        if self.pace > 0:
            await anyio.sleep(rng.uniform(5, 20) * self.pace)
        sis = request.recorded_sis
        if sis is None:
            safe_id = "".join(c if c.isalnum() or c in "._-" else "-" for c in request.issue_id)
            sis = Sis(
                issue=SisIssue(id=request.issue_id, title=request.title, body=request.body),
                tasks=[
                    SisTask(
                        task_id=f"{safe_id}-1",
                        title=request.title,
                        description=request.body,
                        estimated_duration_minutes=rng.uniform(2, 20),
                    )
                ],
            )
        return PlanResult(ok=True, model=request.model, sis=sis, usage=usage, cost_usd=cost)
