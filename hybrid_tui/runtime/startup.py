"""A run's start-up load: the task specs and the pure scheduler, rebuilt from the store
(fresh run or resume: the same code path).

Room: runtime. Reads the store (``store/engine_reads.py``); the decisions stay in ``core``.
The caller stores the scheduler's start-up change records (``task_state.apply_changes``).
"""

from __future__ import annotations

from typing import Any

from hybrid_tui.core.scheduler import Scheduler
from hybrid_tui.core.tasks import SavedTask, TaskInfo
from hybrid_tui.core.tiering import select_model
from hybrid_tui.spec.models import SisTask
from hybrid_tui.store import engine_reads, writes
from hybrid_tui.runtime.context import RunContext


def load_specs(ctx: RunContext) -> None:
    """Every task's spec into ``ctx.specs``, and each task's last failure output into
    ``ctx.feedback`` (the next attempt's feedback survives a restart)."""
    # The store's spec is the truth, but where the loaded mission holds the very same task
    # (same JSON, as create_run wrote it) its object is reused: a second parsed copy of
    # every spec costs ~4 kB a task (~44 MB at 10,000 tasks).
    loaded = {t.task_id: t for t in getattr(ctx.mission, "tasks", None) or () if isinstance(t, SisTask)}
    for task_id, spec_json in engine_reads.task_specs_json(ctx.run_id):
        same = loaded.get(task_id)
        if same is None or same.model_dump_json() != spec_json:
            same = SisTask.model_validate_json(spec_json)
        ctx.specs[task_id] = same
    ctx.feedback.update(engine_reads.last_failure_messages(ctx.run_id))


def restore_scheduler(ctx: RunContext, now: float) -> tuple[Scheduler, list[Any]]:
    """The scheduler as the store left it, and the change records its start-up produced."""
    run = ctx.store.get_run(ctx.run_id)
    rows = engine_reads.saved_task_rows(ctx.run_id)
    infos = []
    for row in rows:
        spec = ctx.specs[row.task_id]
        try:
            expected = ctx.pricing.expected_task_cost(spec, select_model(spec, ctx.config.models))
        except Exception:  # unpriced model: the budget check cannot use it
            expected = 0.0
        infos.append(TaskInfo.from_sis(spec, expected_cost_usd=expected))
    failures = engine_reads.failure_counts(ctx.run_id)
    saved = {
        row.task_id: SavedTask(
            status=row.status,
            attempts=row.attempts,
            failures=dict(failures.get(row.task_id, {})),
            retry_at=row.retry_at,
            last_agent=row.agent_id,
            last_failure=row.failure_type,
            last_message=ctx.feedback.get(row.task_id, ""),
        )
        for row in rows
    }
    config = ctx.config
    scheduler, changes = Scheduler.restore(
        infos,
        saved,
        now=now,
        spent_usd=engine_reads.spent_usd(ctx.run_id),
        retry_spent_usd=engine_reads.spent_usd(ctx.run_id, retries_only=True),
        paused_reason=(run.pause_reason or "paused") if run.status == "paused" else None,
        # Workers run one task per attempt (their messages carry one task): no batching there.
        policies=(config.policies if ctx.workers is None or config.policies.batch is None
                  else config.policies.model_copy(update={"batch": None})),
        mission_budget_usd=run.mission_budget_usd,
        retry_budget_usd=run.retry_budget_usd,
        pool_min=run.pool_min,
        pool_max=run.pool_max,
        rng=ctx.rng,
        # No per-attempt cap reservation: with the cap ($1 by default) reserved per attempt in
        # flight, a $3 mission could run only 3 attempts at once and a $0.50 retry budget no retry.
        # Each attempt reserves its task's expected cost instead.
        attempt_cost_cap=None,
    )
    # A resumed run keeps what its attempts taught: backend speed, estimates raised by long failures.
    for task_id, backend, seconds, succeeded in engine_reads.ended_attempt_durations(ctx.run_id):
        if task_id in saved:
            scheduler.learn_attempt(task_id, backend, seconds, succeeded)
    return scheduler, changes


def store_scores(ctx: RunContext) -> None:
    """Write every queued task's priority score once, so the console shows it from the start."""
    scheduler = ctx.scheduler
    queued = [tid for tid in scheduler.task_ids() if scheduler.status(tid).value in ("pending", "ready")]
    if not queued:
        return
    with ctx.transaction() as txn:
        writes.store_task_scores(ctx.store, ctx.run_id, [(tid, scheduler.shown_score(tid)) for tid in queued], txn.version)
