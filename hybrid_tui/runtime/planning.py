"""The planning phase (L2): one planner call per issue, each an Attempt row of phase 'planning'.

Room: runtime. The replay planner returns the mission's recorded SIS (whose tasks the run
already holds); a planner that produces new tasks has them inserted here. Issues planned
before a crash (a succeeded planning attempt) are not planned again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from hybrid_tui.agents.base import PlanRequest, PlanResult
from hybrid_tui.store import models as m
from hybrid_tui.store.runs import _task_row
from hybrid_tui.runtime.faults import crash_point

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator


def planning_key(issue_id: str) -> str:
    """The Attempt.task_id of an issue's planning attempts (kept apart from task ids)."""
    return f"plan:{issue_id}"


async def plan_issues(c: "Coordinator") -> bool:
    if c.planner is None:  # a backend without a planner (cli): the mission's SIS are the plan
        return True
    recorded = {sis.issue.id: sis for _, sis in c.mission.sis}
    issues = list(m.Issue.select().where(m.Issue.run == c.run_id).order_by(m.Issue.id))
    ok = True
    limiter = anyio.CapacityLimiter(max(1, c.config.agents.planners))

    async def plan_one(issue: m.Issue) -> None:
        nonlocal ok
        key = planning_key(issue.issue_id)
        done = m.Attempt.get_or_none(
            (m.Attempt.run == c.run_id) & (m.Attempt.task_id == key) & (m.Attempt.outcome == "succeeded")
        )
        if done is not None:
            return
        async with limiter:
            retries = 0
            while True:
                now = c.clock()
                with c.store.write(c.run_id) as version:
                    number = m.Attempt.select().where((m.Attempt.run == c.run_id) & (m.Attempt.task_id == key)).count() + 1
                    row = m.Attempt.create(
                        run=c.run_id, task_id=key, number=number, phase="planning", agent_id=f"planner-{issue.id}",
                        backend=c.backend_name, model=c.config.models.planner, started_at=now, version=version,
                    )
                    c.events.add("planning.started", f"planning issue {issue.issue_id}", issue=issue.issue_id)
                c.events.flush()
                crash_point("planning", issue.issue_id)
                request = PlanRequest(
                    run_id=c.run_id, issue_id=issue.issue_id, title=issue.title, body=issue.body,
                    repo_root=c.mission.repo_path, model=c.config.models.planner, cost_of=c.cost_of,
                    recorded_sis=recorded.get(issue.issue_id),
                    known_task_ids=frozenset(
                        t.task_id for _, sis in c.mission.sis if sis.issue.id != issue.issue_id for t in sis.tasks
                    ),
                )
                try:
                    result = await c.planner.plan(request)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    result = PlanResult(ok=False, model=request.model, failure_type="agent_error", message=f"{type(exc).__name__}: {exc}")
                end = c.clock()
                delay = _planning_retry_delay(c, result, retries)
                with c.store.write(c.run_id) as version:
                    m.Attempt.update(
                        finished_at=end, duration_seconds=end - now, outcome="succeeded" if result.ok else "failed",
                        failure_type=result.failure_type, failure_message=result.message, model=result.model,
                        input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
                        cache_read_tokens=result.usage.cache_read_tokens, cache_write_tokens=result.usage.cache_write_tokens,
                        cost_usd=result.cost_usd, version=version,
                    ).where(m.Attempt.id == row.id).execute()
                    if result.ok and result.sis is not None:
                        _insert_new_tasks(c, result.sis, end, version)
                        c.events.add("planning.done", f"issue {issue.issue_id}: {len(result.sis.tasks)} task(s)", issue=issue.issue_id)
                    elif delay is not None:
                        c.events.add(
                            "planning.retry", f"issue {issue.issue_id}: {result.failure_type}, retry {retries + 1} in {delay:.1f} s",
                            level="warning", issue=issue.issue_id,
                        )
                    else:
                        ok = False
                        c.events.add("planning.failed", f"issue {issue.issue_id}: {result.message}", level="error", issue=issue.issue_id)
                c.events.flush()
                if delay is None:
                    break
                retries += 1
                await anyio.sleep(delay)

    async with anyio.create_task_group() as tg:
        for issue in issues:
            tg.start_soon(plan_one, issue)
    return ok


# Transient planner failures are retried under the mission's policies; an invalid SIS after
# its repair turn (agent_error) is a planning failure for the operator.
TRANSIENT_PLANNING_FAILURES = ("network_error", "rate_limited")


def _planning_retry_delay(c: "Coordinator", result: PlanResult, retries: int) -> float | None:
    """Seconds before the next planning try, or None when the failure is final."""
    from hybrid_tui.core.policies import retry_delay

    if result.ok or result.failure_type not in TRANSIENT_PLANNING_FAILURES:
        return None
    rule = c.config.policies.retries.get(result.failure_type)
    if rule is None or retries >= rule.max_retries:
        return None
    return retry_delay(rule, retries, c.config.policies, c.rng, retry_after=result.retry_after)


def _insert_new_tasks(c: "Coordinator", sis, now: float, version: int) -> None:
    known = {t.task_id for t in m.Task.select(m.Task.task_id).where(m.Task.run == c.run_id)}
    for task in sis.tasks:
        if task.task_id in known:
            continue
        row = _task_row(c.run_id, sis.issue.id, task, now)
        row["version"] = version
        m.Task.insert(**row).execute()
        for dep in task.dependencies:
            m.Dependency.insert(run=c.run_id, task_id=task.task_id, depends_on=dep).on_conflict_ignore().execute()
        for seq, op in enumerate(task.file_operations):
            m.FileOperation.insert(run=c.run_id, task_id=task.task_id, seq=seq, op=op.op, path=op.path).execute()
