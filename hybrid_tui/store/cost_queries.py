"""Spend and estimate aggregates: what the console's cost pane and its projection need, as
SUM / GROUP BY in the database (a 10,000-task run cannot load a row object per attempt).

Room: store. Reads only. The pricing (tokens -> dollars) and the tiering (which model a
task is billed at) stay in ``costs``: these queries group rows by what those decisions
depend on and return the groups as plain named tuples. Written with peewee's query builder;
the one SQLite-only part (reading a task's security checks out of its spec JSON) is
isolated in :func:`_security_checks_present`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import peewee as pw

from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import FINISHED_STATUSES, TERMINAL_STATUSES

_FINISHED = sorted(FINISHED_STATUSES)
_SETTLED = sorted(TERMINAL_STATUSES)  # tasks that will cost nothing more (unless retried)
_RUNNING_TASKS_PER_QUERY = 500  # bound variables per statement stay well under SQLite's cap

# When an attempt's dollars are booked: when it finished (a running one's when it started).
_BOOKED_AT = pw.fn.COALESCE(m.Attempt.finished_at, m.Attempt.started_at)
_IS_PLANNING = pw.fn.COALESCE(m.Attempt.phase, "") == "planning"
# attempt_phase() of costs.accounting: an implementing attempt (an empty phase counts as
# one) after the first is a retry.
_IS_RETRY = (m.Attempt.phase == "retry") | (
    (pw.fn.COALESCE(pw.fn.NULLIF(m.Attempt.phase, ""), "implementing") == "implementing") & (m.Attempt.number > 1)
)


def _flag(condition: pw.Expression) -> pw.Case:
    """1 where ``condition`` holds, else 0 (also where it is NULL): sums and groups alike on
    every database (SQLite has no boolean type, PostgreSQL cannot SUM one)."""
    return pw.Case(None, [(condition, 1)], 0)


def _positions(count: int) -> list[pw.SQL]:
    """GROUP BY 1, 2, ...: the selected expressions by position (they bind parameters, so
    repeating them would not compare equal on PostgreSQL)."""
    return [pw.SQL(str(i)) for i in range(1, count + 1)]


# ------------------------------------------------------------------ attempts


class AttemptCostGroup(NamedTuple):
    """Attempts alike in what decides how their dollars count."""

    model: str
    planning: int  # 1: planning attempts
    retry: int  # 1: retries
    task_finished: int  # 1: attempts of a finished task
    unrecorded: int  # 1: no dollars recorded (priced from their tokens)
    recorded_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None


def attempt_cost_groups(run_id: str) -> list[AttemptCostGroup]:
    """The run's attempts grouped by model, planning, retry, task finished and unrecorded,
    with their recorded dollars and tokens; in the order the groups' first attempts started."""
    task_finished = _flag(m.Task.status.in_(_FINISHED))
    unrecorded = _flag(m.Attempt.cost_usd.is_null() | (m.Attempt.cost_usd == 0))
    query = (
        m.Attempt.select(
            m.Attempt.model, _flag(_IS_PLANNING), _flag(_IS_RETRY), task_finished, unrecorded,
            pw.fn.SUM(m.Attempt.cost_usd), pw.fn.SUM(m.Attempt.input_tokens), pw.fn.SUM(m.Attempt.output_tokens),
            pw.fn.SUM(m.Attempt.cache_read_tokens), pw.fn.SUM(m.Attempt.cache_write_tokens),
        )
        .join(m.Task, pw.JOIN.LEFT_OUTER,
              on=(m.Task.run == m.Attempt.run) & (m.Task.task_id == m.Attempt.task_id))
        .where(m.Attempt.run == run_id)
        .group_by(*_positions(5))
        .order_by(pw.fn.MIN(m.Attempt.started_at))
    )
    return list(map(AttemptCostGroup._make, m.database_proxy.execute(query)))


class RunningAttemptCost(NamedTuple):
    task_id: str
    model: str
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None


def running_attempt_costs(run_id: str) -> list[RunningAttemptCost]:
    """What each running implementing attempt has cost so far (one row per busy agent)."""
    query = m.Attempt.select(
        m.Attempt.task_id, m.Attempt.model, m.Attempt.cost_usd, m.Attempt.input_tokens, m.Attempt.output_tokens,
        m.Attempt.cache_read_tokens, m.Attempt.cache_write_tokens,
    ).where((m.Attempt.run == run_id) & (m.Attempt.outcome == "running") & ~_IS_PLANNING)
    return list(map(RunningAttemptCost._make, m.database_proxy.execute(query)))


# ------------------------------------------------------------------ task estimates


def _security_checks_present(spec_json: pw.Field) -> pw.Case:
    """1 when the task's SIS lists validation security checks, as ``costs.accounting.task_model``
    reads them from ``spec_json`` (truthiness of ``validation.security_checks``; JSON that
    does not parse counts as none). SQLite and PostgreSQL spell JSON differently: one
    branch each."""
    if _on_postgresql():
        return _pg_security_checks_present(spec_json)
    return _sqlite_security_checks_present(spec_json)


def _on_postgresql() -> bool:
    return isinstance(m.database_proxy.obj, pw.PostgresqlDatabase)


def _sqlite_security_checks_present(spec_json: pw.Field) -> pw.Case:
    """SQLite-only: its JSON1 functions."""
    path = "$.validation.security_checks"
    value = pw.fn.json_extract(spec_json, path)
    by_type = pw.Case(pw.fn.json_type(spec_json, path), [
        ("array", pw.fn.json_array_length(spec_json, path) > 0),
        ("text", pw.fn.length(value) > 0),
        ("true", 1),
        ("integer", value != 0),
        ("real", value != 0),
    ], 0)
    return pw.Case(None, [(pw.fn.json_valid(spec_json), by_type)], 0)


def _pg_security_checks_present(spec_json: pw.Field) -> pw.Case:
    """PostgreSQL-only: jsonb. ``hybrid_json_or_null`` (created with the store) parses the
    text, NULL when it does not parse."""
    value = pw.NodeList((pw.fn.hybrid_json_or_null(spec_json), pw.SQL("#> '{validation,security_checks}'")))
    as_text = pw.NodeList((pw.fn.hybrid_json_or_null(spec_json), pw.SQL("#>> '{validation,security_checks}'")))
    return pw.Case(pw.fn.jsonb_typeof(value), [
        ("array", pw.Case(None, [(pw.fn.jsonb_array_length(value) > 0, 1)], 0)),
        ("string", pw.Case(None, [(pw.fn.length(as_text) > 0, 1)], 0)),
        ("boolean", pw.Case(None, [(as_text == "true", 1)], 0)),
        ("number", pw.Case(None, [(pw.Cast(as_text, "NUMERIC") != 0, 1)], 0)),
    ], 0)  # an object counts as none, as in the SQLite branch


def _task_shape(long_task_minutes: float) -> list[pw.Node]:
    """What picks a task's model: its hint, priority, whether it is long, and (only when
    those do not decide) whether it has security checks."""
    duration = pw.fn.COALESCE(m.Task.estimated_duration_minutes, 0)
    security_decides = (
        (pw.fn.COALESCE(m.Task.model_hint, "") == "") & (m.Task.priority != "CRITICAL") & (duration <= long_task_minutes)
    )
    return [
        m.Task.model_hint, m.Task.priority, _flag(duration > long_task_minutes),
        pw.Case(None, [(security_decides, _security_checks_present(m.Task.spec_json))], 0),
    ]


class TaskEstimateGroup(NamedTuple):
    """Tasks alike in what picks their model and in where they stand."""

    model_hint: str | None
    priority: str
    long: int  # 1: longer than the tiering's long-task threshold
    security: int  # 1: security checks decide the model
    stand: str  # finished, settled or remaining
    tasks: int
    estimated_input_tokens: int | None
    estimated_output_tokens: int | None


def task_estimate_groups(run_id: str, long_task_minutes: float) -> list[TaskEstimateGroup]:
    stand = pw.Case(None, [(m.Task.status.in_(_FINISHED), "finished"), (m.Task.status.in_(_SETTLED), "settled")],
                    "remaining")
    query = (
        m.Task.select(*_task_shape(long_task_minutes), stand, pw.fn.COUNT(m.Task.id),
                      pw.fn.SUM(m.Task.estimated_input_tokens), pw.fn.SUM(m.Task.estimated_output_tokens))
        .where(m.Task.run == run_id)
        .group_by(*_positions(5))
    )
    return list(map(TaskEstimateGroup._make, m.database_proxy.execute(query)))


class TaskEstimate(NamedTuple):
    task_id: str
    model_hint: str | None
    priority: str
    long: int
    security: int
    estimated_input_tokens: int | None
    estimated_output_tokens: int | None


def unsettled_task_estimates(run_id: str, task_ids: Iterable[str], long_task_minutes: float) -> list[TaskEstimate]:
    """The estimate shape of those of ``task_ids`` not settled yet."""
    ids = list(task_ids)
    out: list[TaskEstimate] = []
    for start in range(0, len(ids), _RUNNING_TASKS_PER_QUERY):
        chunk = ids[start:start + _RUNNING_TASKS_PER_QUERY]
        query = m.Task.select(
            m.Task.task_id, *_task_shape(long_task_minutes), m.Task.estimated_input_tokens,
            m.Task.estimated_output_tokens,
        ).where((m.Task.run == run_id) & m.Task.task_id.in_(chunk) & m.Task.status.not_in(_SETTLED))
        out += map(TaskEstimate._make, m.database_proxy.execute(query))
    return out


# ------------------------------------------------------------------ the console's burn chart


def first_booked_at(run_id: str) -> float | None:
    """When the run's first dollars were booked (None before any attempt)."""
    row = m.database_proxy.execute(m.Attempt.select(pw.fn.MIN(_BOOKED_AT)).where(m.Attempt.run == run_id)).fetchone()
    return row[0] if row else None


def spend_by_bucket(run_id: str, start: float, bucket_seconds: float) -> list[tuple[int, float]]:
    """(bucket index, dollars booked in it) for buckets of ``bucket_seconds`` from ``start``
    (buckets without spend are absent)."""
    # SQLite's CAST truncates, and every booking is at or after ``start`` (their minimum), so
    # it floors. PostgreSQL's CAST rounds: it takes FLOOR first.
    offset = (_BOOKED_AT - start) / bucket_seconds
    index = pw.Cast(pw.fn.FLOOR(offset) if _on_postgresql() else offset, "INTEGER")
    query = (
        m.Attempt.select(index, pw.fn.SUM(pw.fn.COALESCE(m.Attempt.cost_usd, 0)))
        .where(m.Attempt.run == run_id)
        .group_by(*_positions(1))
    )
    return [tuple(row) for row in m.database_proxy.execute(query)]


def spend_by_model(run_id: str) -> list[tuple[str, float, float]]:
    """(model, dollars, dollars of attempts after a task's first) in the order each model
    was first used."""
    cost = pw.fn.COALESCE(m.Attempt.cost_usd, 0)
    query = (
        m.Attempt.select(m.Attempt.model, pw.fn.SUM(cost), pw.fn.SUM(pw.Case(None, [(m.Attempt.number > 1, cost)], 0)))
        .where(m.Attempt.run == run_id)
        .group_by(m.Attempt.model)
        .order_by(pw.fn.MIN(m.Attempt.id))
    )
    return [tuple(row) for row in m.database_proxy.execute(query)]


def budget_stopped_count(run_id: str) -> int:
    """Tasks failed because a budget or an attempt's cost cap ran out."""
    query = m.Task.select(pw.fn.COUNT(m.Task.id)).where(
        (m.Task.run == run_id) & (m.Task.status == "failed") & (m.Task.failure_type == "budget_exhausted")
    )
    row = m.database_proxy.execute(query).fetchone()
    return row[0] if row else 0
