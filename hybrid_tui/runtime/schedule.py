"""Building the pure scheduler from the store (fresh run or resume: the same code path).

Room: runtime. Reads the store; the decisions stay in ``core``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import peewee as pw

from hybrid_tui.core.scheduler import Scheduler
from hybrid_tui.core.tasks import SavedTask, TaskInfo
from hybrid_tui.store import models as m

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator


def build_scheduler(c: "Coordinator") -> Any:
    now = c.clock()
    run = m.Run.get_by_id(c.run_id)
    # Plain tuples of the columns needed (model instances of 10,000 rows with their specs
    # were most of a large run's start-up).
    rows = list(
        m.Task.select(m.Task.task_id, m.Task.status, m.Task.attempts, m.Task.retry_at, m.Task.agent_id,
                      m.Task.failure_type)
        .where(m.Task.run == c.run_id).order_by(m.Task.id).namedtuples()
    )
    infos = []
    for row in rows:
        spec = c.specs[row.task_id]
        try:
            expected = c.pricing.expected_task_cost(spec, c._select_model(spec))
        except Exception:  # unpriced model: the budget check cannot use it
            expected = 0.0
        infos.append(TaskInfo.from_sis(spec, expected_cost_usd=expected))
    failures: dict[str, Counter[str]] = {}
    for att in m.Attempt.select(m.Attempt.task_id, m.Attempt.failure_type).where(
        (m.Attempt.run == c.run_id) & (m.Attempt.phase != "planning") & m.Attempt.failure_type.is_null(False)
    ):
        if att.failure_type != "interrupted":
            failures.setdefault(att.task_id, Counter())[att.failure_type] += 1
    saved = {
        row.task_id: SavedTask(
            status=row.status,
            attempts=row.attempts,
            failures=dict(failures.get(row.task_id, {})),
            retry_at=row.retry_at,
            last_agent=row.agent_id,
            last_failure=row.failure_type,
            last_message=c.feedback.get(row.task_id, ""),
        )
        for row in rows
    }
    spent = m.Attempt.select(pw.fn.COALESCE(pw.fn.SUM(m.Attempt.cost_usd), 0)).where(m.Attempt.run == c.run_id).scalar()
    retry_spent = (
        m.Attempt.select(pw.fn.COALESCE(pw.fn.SUM(m.Attempt.cost_usd), 0))
        .where((m.Attempt.run == c.run_id) & (m.Attempt.phase == "retry"))
        .scalar()
    )
    config = c.config
    scheduler, changes = Scheduler.restore(
        infos,
        saved,
        now=now,
        spent_usd=float(spent or 0),
        retry_spent_usd=float(retry_spent or 0),
        paused_reason=(run.pause_reason or "paused") if run.status == "paused" else None,
        policies=config.policies,
        mission_budget_usd=run.mission_budget_usd,
        retry_budget_usd=run.retry_budget_usd,
        pool_min=run.pool_min,
        pool_max=run.pool_max,
        rng=c.rng,
        # No per-attempt cap reservation: with the cap ($1 by default) reserved per attempt in
        # flight, a $3 mission could run only 3 attempts at once and a $0.50 retry budget no retry.
        # Each attempt reserves its task's expected cost instead.
        attempt_cost_cap=None,
    )
    c.scheduler = scheduler
    c._persist(changes, now)
    return scheduler
