"""The planning phase (L2): one planner call per issue, each an Attempt row of phase 'planning'.

Room: runtime. The replay and sim planners return the mission's recorded SIS (whose tasks
the run already holds); a planner that writes its own (``uses_recorded_sis = False``: Claude)
plans only the issues WITHOUT a reviewed ``sis/*.json`` - a reviewed SIS is used as it is,
and an event says so. A planner that produces new tasks has them inserted here. Issues
planned before a crash (a succeeded planning attempt) are not planned again.

A planning failure (after the policy's retries) does not finish the run: the coordinator
pauses it with the issues named (exit 3), and ``resume`` plans those issues again.
"""

from __future__ import annotations

from collections.abc import Iterator, Set

import anyio

from hybrid_tui.agents.base import PlanRequest, PlanResult
from hybrid_tui.spec.models import Usage
from hybrid_tui.core.policies import retry_delay
from hybrid_tui.store import engine_reads, writes
from hybrid_tui.runtime.context import RunContext
from hybrid_tui.runtime.faults import crash_point


def planning_key(issue_id: str) -> str:
    """The Attempt.task_id of an issue's planning attempts (kept apart from task ids)."""
    return f"plan:{issue_id}"


class TasksOfOtherIssues(Set):
    """The task ids of every issue but one, as a view over the mission's ids: made in O(1)
    per issue (a 10,000-task mission planned issue by issue stays linear)."""

    def __init__(self, every_id: frozenset[str], own_ids: frozenset[str]):
        self._every, self._own = every_id, own_ids

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._every and task_id not in self._own

    def __iter__(self) -> Iterator[str]:
        return (t for t in self._every if t not in self._own)

    def __len__(self) -> int:
        return len(self._every) - len(self._own & self._every)


PLANNING_FAILED_PREFIX = "planning failed"


async def plan_issues(ctx: RunContext) -> list[str]:
    """Plan the run's issues; returns one line per issue whose planning failed (empty: all planned)."""
    if ctx.planner is None:  # a backend without a planner (cli): the mission's SIS are the plan
        return []
    recorded = {sis.issue.id: sis for _, sis in ctx.mission.sis}
    ids_of_issue = {issue_id: frozenset(t.task_id for t in sis.tasks) for issue_id, sis in recorded.items()}
    every_recorded_id = frozenset(t.task_id for _, sis in ctx.mission.sis for t in sis.tasks)
    issues = engine_reads.run_issues(ctx.run_id)
    stored_ids = engine_reads.task_ids(ctx.run_id)  # read once, kept up to date as issues are planned
    failures: list[str] = []
    if not getattr(ctx.planner, "uses_recorded_sis", True):
        reviewed = [issue.issue_id for issue in issues if issue.issue_id in recorded]
        issues = [issue for issue in issues if issue.issue_id not in recorded]
        if reviewed:
            # A reviewed SIS written after the run was made (the operator's answer to a planning
            # failure) has no tasks in the run yet: its tasks are added as they are.
            added = sorted(set(reviewed) - engine_reads.issues_with_tasks(ctx.run_id), key=reviewed.index)
            with ctx.transaction() as txn:
                for issue_id in added:
                    tasks = recorded[issue_id].tasks
                    taken = sorted(t.task_id for t in tasks if t.task_id in stored_ids)
                    if taken:
                        failures.append(f"{issue_id} (sis/{issue_id}.json: task id(s) {', '.join(taken)} "
                                        "already belong to another issue of this run)")
                        ctx.events.add("planning.failed", f"issue {issue_id}: {failures[-1]}", level="error",
                                       issue=issue_id)
                        continue
                    writes.insert_planned_tasks(ctx.run_id, issue_id, tasks, stored_ids, ctx.clock(), txn.version,
                                                approval_gate=ctx.config.policies.approve)
                    stored_ids.update(t.task_id for t in tasks)
                    ctx.events.add("planning.reviewed", f"issue {issue_id}: the reviewed sis/{issue_id}.json added "
                                   f"since the run was made is used as it is: {len(tasks)} task(s)", issue=issue_id)
                ctx.events.add("planning.skipped",
                               f"{len(reviewed)} issue(s) have a reviewed SIS, used as it is (not planned again): "
                               f"{', '.join(reviewed)}; planning {len(issues)} issue(s) without one")
    limiter = anyio.CapacityLimiter(max(1, ctx.config.agents.planners))

    async def plan_one(issue: engine_reads.IssueRow) -> None:
        key = planning_key(issue.issue_id)
        if engine_reads.has_succeeded_attempt(ctx.run_id, key):
            return
        async with limiter:
            retries = 0
            while True:
                now = ctx.clock()
                with ctx.transaction() as txn:
                    row_id = writes.start_planning_attempt(ctx.run_id, key, f"planner-{issue.id}", ctx.backend_name,
                                                           ctx.config.models.planner, now, txn.version)
                    ctx.events.add("planning.started", f"planning issue {issue.issue_id}", issue=issue.issue_id)
                crash_point("planning", issue.issue_id)

                def report_spend(usage: Usage, cost_usd: float, row_id: int = row_id) -> None:
                    # Stored as billed: a coordinator killed during the repair turn leaves the
                    # first answer's spend on the attempt that recovery marks interrupted.
                    with ctx.transaction() as txn:
                        writes.end_planning_attempt(row_id, dict(
                            cost_usd=cost_usd, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                            cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
                            version=txn.version))

                request = PlanRequest(
                    run_id=ctx.run_id, issue_id=issue.issue_id, title=issue.title, body=issue.body,
                    repo_root=ctx.mission.repo_path, model=ctx.config.models.planner, cost_of=ctx.pricing.cost,
                    recorded_sis=recorded.get(issue.issue_id),
                    known_task_ids=TasksOfOtherIssues(every_recorded_id, ids_of_issue.get(issue.issue_id, frozenset())),
                    report_spend=report_spend,
                )
                try:
                    result = await ctx.planner.plan(request)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    result = PlanResult(ok=False, model=request.model, failure_type="agent_error", message=f"{type(exc).__name__}: {exc}")
                end = ctx.clock()
                delay = _planning_retry_delay(ctx, result, retries)
                with ctx.transaction() as txn:
                    writes.end_planning_attempt(row_id, dict(
                        finished_at=end, duration_seconds=end - now, outcome="succeeded" if result.ok else "failed",
                        failure_type=result.failure_type, failure_message=result.message, model=result.model,
                        input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
                        cache_read_tokens=result.usage.cache_read_tokens, cache_write_tokens=result.usage.cache_write_tokens,
                        cost_usd=result.cost_usd, version=txn.version,
                    ))
                    if result.ok and result.sis is not None:
                        writes.insert_planned_tasks(ctx.run_id, result.sis.issue.id, result.sis.tasks,
                                                    stored_ids, end, txn.version,
                                                    approval_gate=ctx.config.policies.approve)
                        stored_ids.update(t.task_id for t in result.sis.tasks)
                        ctx.events.add("planning.done", f"issue {issue.issue_id}: {len(result.sis.tasks)} task(s)", issue=issue.issue_id)
                    elif delay is not None:
                        ctx.events.add(
                            "planning.retry", f"issue {issue.issue_id}: {result.failure_type}, retry {retries + 1} in {delay:.1f} s",
                            level="warning", issue=issue.issue_id,
                        )
                    else:
                        first_line = (result.message or "").splitlines()[0] if result.message else ""
                        failures.append(f"{issue.issue_id} ({result.failure_type}: {first_line})")
                        ctx.events.add("planning.failed", f"issue {issue.issue_id}: {result.message}", level="error", issue=issue.issue_id)
                if delay is None:
                    break
                retries += 1
                await anyio.sleep(delay)

    async with anyio.create_task_group() as tg:
        for issue in issues:
            tg.start_soon(plan_one, issue)
    return sorted(failures)


# Transient planner failures are retried under the mission's policies; an invalid SIS after
# its repair turn (agent_error) is a planning failure for the operator.
TRANSIENT_PLANNING_FAILURES = ("network_error", "rate_limited")


def _planning_retry_delay(ctx: RunContext, result: PlanResult, retries: int) -> float | None:
    """Seconds before the next planning try, or None when the failure is final."""
    if result.ok or result.failure_type not in TRANSIENT_PLANNING_FAILURES:
        return None
    rule = ctx.config.policies.retries.get(result.failure_type)
    if rule is None or retries >= rule.max_retries:
        return None
    return retry_delay(rule, retries, ctx.config.policies, ctx.rng, retry_after=result.retry_after)
