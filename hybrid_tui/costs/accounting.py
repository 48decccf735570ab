"""Live accounting: spend by phase/model/task, budgets and alert levels, burn rate, projection.

Room: costs. Reads the store (never writes it) through ``store.queries`` and
``store.cost_queries``. The arithmetic is in pure functions over plain records (anything
with the attributes of ``store.records.AttemptRecord`` / ``TaskRecord``: those records,
dataclasses, the TUI's cached rows), so the console, the report and the tests all use the
same code; the functions named after the brief (``spend_summary(run_id)``, ...) are thin
wrappers that read the store opened with ``hybrid_tui.store.open_store``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, Protocol, Sequence

from hybrid_tui.core.tiering import LONG_TASK_MINUTES, select_model
from hybrid_tui.spec.models import ModelsSection, Usage

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.store import cost_queries, queries
from hybrid_tui.store.records import AttemptRecord, RunRecord, TaskRecord
from hybrid_tui.vocabulary import FINISHED_STATUSES, TERMINAL_STATUSES

PHASES = ("planning", "implementing", "retry")
DEFAULT_ALERTS = (0.5, 0.75, 0.9, 1.0)
# Tasks that will not cost anything more (unless an operator retries them). The tasks whose
# spend tells how far the SIS estimates are off are FINISHED_STATUSES.
SETTLED_STATUSES = TERMINAL_STATUSES


class AttemptLike(Protocol):
    task_id: str
    number: int
    phase: str
    model: str
    started_at: float
    finished_at: float | None
    outcome: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class TaskLike(Protocol):
    task_id: str
    status: str
    estimated_input_tokens: int
    estimated_output_tokens: int
    model_hint: str | None


# ------------------------------------------------------------------------ per attempt


def attempt_phase(attempt: AttemptLike) -> str:
    """'planning', 'implementing' or 'retry'; a second or later implementing attempt is a retry."""
    phase = attempt.phase or "implementing"
    if phase == "implementing" and (attempt.number or 1) > 1:
        return "retry"
    return phase


def attempt_usage(attempt: AttemptLike) -> Usage:
    return Usage(
        input_tokens=attempt.input_tokens or 0,
        output_tokens=attempt.output_tokens or 0,
        cache_read_tokens=attempt.cache_read_tokens or 0,
        cache_write_tokens=attempt.cache_write_tokens or 0,
    )


def attempt_cost(attempt: AttemptLike, table: PricingTable | None = None) -> float:
    """The recorded cost; when none was recorded but tokens were, the tokens priced by ``table``.

    The recorded figure wins because it is what was billed (batch pricing, the API's own
    count); pricing the tokens covers backends that report usage but no dollars.
    """
    recorded = attempt.cost_usd or 0.0
    if recorded or table is None:
        return recorded
    usage = attempt_usage(attempt)
    if not (usage.input_tokens or usage.output_tokens or usage.cache_read_tokens or usage.cache_write_tokens):
        return 0.0
    return table.cost(attempt.model, usage)


def alert_level(spent: float, budget: float, thresholds: Iterable[float] = DEFAULT_ALERTS) -> float | None:
    """The highest alert threshold (fraction of ``budget``) that ``spent`` has reached, else None."""
    if budget <= 0:
        return None
    reached = [t for t in thresholds if spent >= t * budget - 1e-12]
    return max(reached) if reached else None


# ---------------------------------------------------------------------------- summary


@dataclass
class SpendSummary:
    total: float
    by_phase: dict[str, float]
    by_model: dict[str, float]
    by_task: dict[str, float]
    retry_spent: float
    mission_budget: float
    retry_budget: float
    alert_level: float | None  # highest mission-budget threshold reached (0.5 = 50 %)
    retry_alert_level: float | None = None
    attempts: int = 0
    tokens: dict[str, int] = field(default_factory=dict)

    @property
    def mission_fraction(self) -> float:
        return self.total / self.mission_budget if self.mission_budget > 0 else 0.0

    @property
    def retry_fraction(self) -> float:
        return self.retry_spent / self.retry_budget if self.retry_budget > 0 else 0.0

    @property
    def mission_remaining(self) -> float:
        return self.mission_budget - self.total

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            mission_fraction=self.mission_fraction,
            retry_fraction=self.retry_fraction,
            mission_remaining=self.mission_remaining,
        )
        return data


def summarize_spend(
    attempts: Iterable[AttemptLike],
    *,
    mission_budget: float,
    retry_budget: float,
    alerts: Sequence[float] = DEFAULT_ALERTS,
    table: PricingTable | None = None,
) -> SpendSummary:
    """Totals over ``attempts`` (running ones count with what they have cost so far)."""
    by_phase = {phase: 0.0 for phase in PHASES}
    by_model: dict[str, float] = defaultdict(float)
    by_task: dict[str, float] = defaultdict(float)
    tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    count = 0
    for attempt in attempts:
        count += 1
        cost = attempt_cost(attempt, table)
        phase = attempt_phase(attempt)
        by_phase[phase] = by_phase.get(phase, 0.0) + cost
        by_model[attempt.model or "(none)"] += cost
        by_task[attempt.task_id] += cost
        tokens["input"] += attempt.input_tokens or 0
        tokens["output"] += attempt.output_tokens or 0
        tokens["cache_read"] += attempt.cache_read_tokens or 0
        tokens["cache_write"] += attempt.cache_write_tokens or 0
    total = sum(by_phase.values())
    retry_spent = by_phase.get("retry", 0.0)
    return SpendSummary(
        total=total,
        by_phase=by_phase,
        by_model=dict(sorted(by_model.items(), key=lambda kv: -kv[1])),
        by_task=dict(by_task),
        retry_spent=retry_spent,
        mission_budget=mission_budget,
        retry_budget=retry_budget,
        alert_level=alert_level(total, mission_budget, alerts),
        retry_alert_level=alert_level(retry_spent, retry_budget, alerts),
        attempts=count,
        tokens=tokens,
    )


# ----------------------------------------------------------------------------- burn


@dataclass
class BurnPoint:
    t: float  # end of the bucket (epoch seconds)
    spent: float  # dollars booked in this bucket
    cumulative: float  # dollars booked up to t


def _booked_at(attempt: AttemptLike, now: float) -> float:
    """When an attempt's dollars count: when it finished; a running one's so far, now."""
    return attempt.finished_at if attempt.finished_at is not None else now


def burn_series_of(
    attempts: Iterable[AttemptLike], start: float, end: float, buckets: int, table: PricingTable | None = None
) -> list[BurnPoint]:
    """Spend in ``buckets`` equal slices of [start, end], for a chart."""
    buckets = max(1, int(buckets))
    end = max(end, start)
    width = (end - start) / buckets or 1.0
    spent = [0.0] * buckets
    before = 0.0
    for attempt in attempts:
        at = _booked_at(attempt, end)
        cost = attempt_cost(attempt, table)
        if at < start:
            before += cost
            continue
        spent[min(int((at - start) / width), buckets - 1)] += cost
    points, running = [], before
    for i, amount in enumerate(spent):
        running += amount
        points.append(BurnPoint(t=start + width * (i + 1), spent=amount, cumulative=running))
    return points


def burn_rate_of(
    attempts: Iterable[AttemptLike],
    now: float,
    *,
    window_seconds: float | None = 300.0,
    start: float | None = None,
    table: PricingTable | None = None,
) -> float:
    """Dollars per hour over the last ``window_seconds`` (None: since ``start``)."""
    items = list(attempts)
    if window_seconds is None:
        if start is None:
            start = min((a.started_at for a in items), default=now)
        window_start = start
    else:
        window_start = now - window_seconds
        if start is not None:
            window_start = max(window_start, start)
    span = now - window_start
    if span <= 0:
        return 0.0
    spent = sum(attempt_cost(a, table) for a in items if window_start <= _booked_at(a, now) <= now)
    return spent / span * 3600.0


# ----------------------------------------------------------------------- projection


@dataclass
class Projection:
    projected_total: float  # spent so far + remaining_estimate
    remaining_estimate: float  # expected cost of the tasks still to run, corrected by the ratio
    actual_to_estimate_ratio: float  # actual / SIS-estimated cost of finished tasks (1.0 before any)
    spent: float = 0.0
    remaining_tasks: int = 0
    finished_tasks: int = 0
    mission_budget: float = 0.0

    @property
    def over_budget(self) -> bool:
        return self.mission_budget > 0 and self.projected_total > self.mission_budget

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["over_budget"] = self.over_budget
        return data


def task_model(task: TaskLike, models: ModelsSection) -> str:
    """The model a task's attempts are billed at: the core's tiering, as the coordinator picks it.

    Works on store rows (no SisTask needed): the security checks are read from ``spec_json``
    only when nothing else already decides.
    """
    hint = getattr(task, "model_hint", None)
    if hint:
        return hint
    priority = getattr(task, "priority", "MEDIUM")
    duration = getattr(task, "estimated_duration_minutes", 0.0) or 0.0
    security: list[str] = []
    if priority != "CRITICAL" and duration <= LONG_TASK_MINUTES:
        try:
            security = json.loads(getattr(task, "spec_json", "") or "{}").get("validation", {}).get("security_checks", [])
        except (TypeError, ValueError, AttributeError):
            security = []
    shape = SimpleNamespace(
        model_hint=None, priority=priority, estimated_duration_minutes=duration,
        validation=SimpleNamespace(security_checks=security),
    )
    return select_model(shape, models)  # type: ignore[arg-type]


def estimated_task_cost(task: TaskLike, model: str, table: PricingTable) -> float:
    usage = Usage(
        input_tokens=task.estimated_input_tokens or 0, output_tokens=task.estimated_output_tokens or 0
    )
    return table.cost(model, usage)


def project(
    tasks: Iterable[TaskLike],
    attempts: Iterable[AttemptLike],
    table: PricingTable,
    *,
    models: ModelsSection,
    mission_budget: float = 0.0,
) -> Projection:
    """Projected total at completion.

    Each task still to run costs its SIS estimate times the actual/estimated ratio of the
    finished tasks (their implementing and retry attempts against their estimates), less
    what its running attempt has already spent.
    """
    attempts = list(attempts)
    spent_by_task: dict[str, float] = defaultdict(float)
    running_by_task: dict[str, float] = defaultdict(float)
    spent = 0.0
    for attempt in attempts:
        cost = attempt_cost(attempt, table)
        spent += cost
        if attempt_phase(attempt) == "planning":
            continue
        spent_by_task[attempt.task_id] += cost
        if attempt.outcome == "running":
            running_by_task[attempt.task_id] += cost
    finished_actual = finished_estimate = 0.0
    finished = 0
    remaining: list[tuple[TaskLike, float]] = []
    for task in tasks:
        estimate = estimated_task_cost(task, task_model(task, models), table)
        if task.status in FINISHED_STATUSES:
            finished += 1
            finished_actual += spent_by_task.get(task.task_id, 0.0)
            finished_estimate += estimate
        elif task.status not in SETTLED_STATUSES:
            remaining.append((task, estimate))
    ratio = finished_actual / finished_estimate if finished and finished_estimate > 0 else 1.0
    remaining_estimate = sum(
        max(estimate * ratio - running_by_task.get(task.task_id, 0.0), 0.0) for task, estimate in remaining
    )
    return Projection(
        projected_total=spent + remaining_estimate,
        remaining_estimate=remaining_estimate,
        actual_to_estimate_ratio=ratio,
        spent=spent,
        remaining_tasks=len(remaining),
        finished_tasks=finished,
        mission_budget=mission_budget,
    )


# ------------------------------------------------------------------- store wrappers


def run_config(run: Any) -> dict[str, Any]:
    """The MissionFile the run was started with, as a dict ({} when unreadable)."""
    try:
        data = json.loads(run.config_json or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def alert_thresholds(run: Any) -> tuple[float, ...]:
    alerts = run_config(run).get("policies", {}).get("budget_alerts")
    return tuple(alerts) if alerts else DEFAULT_ALERTS


def run_models(run: Any) -> ModelsSection:
    """The run's [models] section (defaults where the stored config has none)."""
    try:
        return ModelsSection.model_validate(run_config(run).get("models") or {})
    except ValueError:
        return ModelsSection()


def table_for_run(run: Any) -> PricingTable:
    """Shipped + user prices with the run's mission [pricing] overrides."""
    return PricingTable.load(run_config(run).get("pricing") or None)


def _store_rows(run_id: str) -> tuple[RunRecord, list[TaskRecord], list[AttemptRecord]]:
    return queries.run_record(run_id), queries.task_records(run_id), queries.attempt_records(run_id)


def spend_summary(run_id: str, table: PricingTable | None = None) -> SpendSummary:
    run, _tasks, attempts = _store_rows(run_id)
    return summarize_spend(
        attempts,
        mission_budget=run.mission_budget_usd,
        retry_budget=run.retry_budget_usd,
        alerts=alert_thresholds(run),
        table=table,
    )


def burn_series(run_id: str, buckets: int = 60, now: float | None = None) -> list[BurnPoint]:
    run, _tasks, attempts = _store_rows(run_id)
    end = run.finished_at or (time.time() if now is None else now)
    return burn_series_of(attempts, run.created_at, end, buckets)


def burn_rate(run_id: str, now: float | None = None, window_seconds: float | None = 300.0) -> float:
    run, _tasks, attempts = _store_rows(run_id)
    now = run.finished_at or (time.time() if now is None else now)
    return burn_rate_of(attempts, now, window_seconds=window_seconds, start=run.created_at)


def projection(run_id: str, now: float | None = None, table: PricingTable | None = None) -> Projection:
    """``now`` is accepted for symmetry with the other wrappers; the projection is by task, not time."""
    run, tasks, attempts = _store_rows(run_id)
    return project(
        tasks,
        attempts,
        table or table_for_run(run),
        models=run_models(run),
        mission_budget=run.mission_budget_usd,
    )


# --------------------------------------------------------------- aggregate path (console)


@dataclass
class CostTotals:
    """What the console shows, computed with SUM/GROUP BY in the database.

    Equal (up to float summation order) to ``spend_summary(run_id)`` (``spent``,
    ``retry_spent``, ``by_model``: recorded dollars, as that summary counts them) and
    ``projection(run_id)``, without loading a row object per task and per attempt:
    the refresh tick of a 10,000-task run cannot afford that.
    """

    spent: float
    retry_spent: float
    by_model: dict[str, float]  # most expensive first
    projection: Projection


def _estimate_model(hint: str | None, priority: str, long: bool, security: bool, models: ModelsSection) -> str:
    shape = SimpleNamespace(
        model_hint=hint or None, priority=priority,
        estimated_duration_minutes=LONG_TASK_MINUTES + 1 if long else 0,
        validation=SimpleNamespace(security_checks=[True] if security else []),
    )
    return select_model(shape, models)  # type: ignore[arg-type]


def _priced(table: PricingTable, model: str, recorded: float, tokens: tuple[int, int, int, int], unrecorded: bool) -> float:
    """attempt_cost() summed over a group of attempts (pricing is linear in tokens)."""
    if not unrecorded:
        return recorded or 0.0
    if not any(tokens):
        return 0.0
    inp, out, cread, cwrite = tokens
    return table.cost(model, Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cread, cache_write_tokens=cwrite))


def cost_totals(run_id: str, table: PricingTable | None = None) -> CostTotals:
    """Spend (recorded), retry spend, spend by model and the projection of ``run_id`` in a
    handful of aggregate queries; ``table`` prices the projection (default: the run's)."""
    run = queries.run_record(run_id)
    table = table or table_for_run(run)
    models = run_models(run)

    # Attempts, grouped by what decides how their dollars count.
    spent = retry_spent = priced_spent = finished_actual = 0.0
    by_model: dict[str, float] = {}
    for group in cost_queries.attempt_cost_groups(run_id):
        tokens = (int(group.input_tokens or 0), int(group.output_tokens or 0),
                  int(group.cache_read_tokens or 0), int(group.cache_write_tokens or 0))
        recorded = group.recorded_usd or 0.0
        spent += recorded
        if group.retry and not group.planning:
            retry_spent += recorded
        key = group.model or "(none)"
        by_model[key] = by_model.get(key, 0.0) + recorded
        cost = _priced(table, group.model, recorded, tokens, bool(group.unrecorded))
        priced_spent += cost
        if group.task_finished and not group.planning:
            finished_actual += cost

    # What running attempts have spent so far, per task (a handful of rows: one per busy agent).
    running_by_task: dict[str, float] = defaultdict(float)
    for attempt in cost_queries.running_attempt_costs(run_id):
        tokens = (int(attempt.input_tokens or 0), int(attempt.output_tokens or 0),
                  int(attempt.cache_read_tokens or 0), int(attempt.cache_write_tokens or 0))
        running_by_task[attempt.task_id] += _priced(table, attempt.model, attempt.cost_usd or 0.0, tokens,
                                                    not attempt.cost_usd)

    # Task estimates, grouped by what picks the model and by where the task stands.
    finished = remaining_tasks = 0
    finished_estimate = remaining_total = 0.0
    for group in cost_queries.task_estimate_groups(run_id, LONG_TASK_MINUTES):
        model = _estimate_model(group.model_hint, group.priority, bool(group.long), bool(group.security), models)
        estimate = table.cost(model, Usage(input_tokens=int(group.estimated_input_tokens or 0),
                                           output_tokens=int(group.estimated_output_tokens or 0)))
        if group.stand == "finished":
            finished += group.tasks
            finished_estimate += estimate
        elif group.stand == "remaining":
            remaining_tasks += group.tasks
            remaining_total += estimate
    ratio = finished_actual / finished_estimate if finished and finished_estimate > 0 else 1.0
    remaining_estimate = remaining_total * ratio
    if running_by_task:
        # A task still running owes its estimate less what it has spent (never below zero).
        for task in cost_queries.unsettled_task_estimates(run_id, running_by_task, LONG_TASK_MINUTES):
            model = _estimate_model(task.model_hint, task.priority, bool(task.long), bool(task.security), models)
            owed = table.cost(model, Usage(input_tokens=int(task.estimated_input_tokens or 0),
                                           output_tokens=int(task.estimated_output_tokens or 0))) * ratio
            remaining_estimate += max(owed - running_by_task[task.task_id], 0.0) - owed
        remaining_estimate = max(remaining_estimate, 0.0)
    return CostTotals(
        spent=spent,
        retry_spent=retry_spent,
        by_model=dict(sorted(by_model.items(), key=lambda kv: -kv[1])),
        projection=Projection(
            projected_total=priced_spent + remaining_estimate,
            remaining_estimate=remaining_estimate,
            actual_to_estimate_ratio=ratio,
            spent=priced_spent,
            remaining_tasks=remaining_tasks,
            finished_tasks=finished,
            mission_budget=run.mission_budget_usd,
        ),
    )
