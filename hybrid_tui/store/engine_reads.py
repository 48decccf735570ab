"""Every read the engine (``hybrid_tui.runtime``) makes of the store, as named functions:
the start-up load of a run (specs, the scheduler's saved state), crash recovery, planning,
rollback checks and the counts the loop needs.

Room: store. Written with peewee's query builder (the same code runs on PostgreSQL).
Reads the engine shares with the console (a commit and the commits after it, events after a
number) live in ``store/queries.py``; these are the engine's own.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Iterator, NamedTuple

import peewee as pw

from hybrid_tui.store import models as m


# ---------------------------------------------------------------------------- the run
def run_pool_target(run_id: str) -> int:
    return m.Run.get_by_id(run_id).pool_target


def count_tasks_in(run_id: str, statuses: Iterable[str]) -> int:
    return m.Task.select().where((m.Task.run == run_id) & m.Task.status.in_(list(statuses))).count()


# ---------------------------------------------------------------------------- start-up load
def task_specs_json(run_id: str) -> Iterator[tuple[str, str]]:
    """(task id, spec JSON) of every task of the run, streamed."""
    return m.Task.select(m.Task.task_id, m.Task.spec_json).where(m.Task.run == run_id).tuples().iterator()


def last_failure_messages(run_id: str) -> dict[str, str]:
    """Task id -> the output of its last failed attempt (the next attempt's feedback)."""
    rows = (m.Attempt.select(m.Attempt.task_id, m.Attempt.failure_message)
            .where((m.Attempt.run == run_id) & (m.Attempt.phase != "planning") & (m.Attempt.outcome == "failed"))
            .order_by(m.Attempt.number).tuples())
    return {task_id: message for task_id, message in rows}


def saved_task_rows(run_id: str) -> list[Any]:
    """Each task's stored scheduling state (plain named tuples, in id order: model
    instances of 10,000 rows with their specs were most of a large run's start-up)."""
    return list(
        m.Task.select(m.Task.task_id, m.Task.status, m.Task.attempts, m.Task.retry_at, m.Task.agent_id,
                      m.Task.failure_type)
        .where(m.Task.run == run_id).order_by(m.Task.id).namedtuples()
    )


def failure_counts(run_id: str) -> dict[str, Counter[str]]:
    """Task id -> how many of its attempts failed, by failure type (interruptions are not failures)."""
    failures: dict[str, Counter[str]] = {}
    for task_id, failure_type in m.Attempt.select(m.Attempt.task_id, m.Attempt.failure_type).where(
        (m.Attempt.run == run_id) & (m.Attempt.phase != "planning") & m.Attempt.failure_type.is_null(False)
    ).tuples():
        if failure_type != "interrupted":
            failures.setdefault(task_id, Counter())[failure_type] += 1
    return failures


def ended_attempt_durations(run_id: str) -> list[tuple[str, str, float, bool]]:
    """(task id, backend, seconds, succeeded) of every implementing attempt that succeeded or
    failed, in the order they started: what the scheduler learns its estimates from."""
    query = (m.Attempt.select(m.Attempt.task_id, m.Attempt.backend, m.Attempt.duration_seconds, m.Attempt.outcome)
             .where((m.Attempt.run == run_id) & (m.Attempt.phase != "planning")
                    & m.Attempt.outcome.in_(["succeeded", "failed"]))
             .order_by(m.Attempt.started_at, m.Attempt.id))
    return [(task_id, backend, float(seconds or 0.0), outcome == "succeeded")
            for task_id, backend, seconds, outcome in query.tuples()]


def spent_usd(run_id: str, *, retries_only: bool = False) -> float:
    """What the run's attempts cost (only the retries' with ``retries_only``)."""
    condition = m.Attempt.run == run_id
    if retries_only:
        condition &= m.Attempt.phase == "retry"
    spent = m.Attempt.select(pw.fn.COALESCE(pw.fn.SUM(m.Attempt.cost_usd), 0)).where(condition).scalar()
    return float(spent or 0)


def count_real_attempts_before(run_id: str, task_id: str, number: int) -> int:
    """Attempts of ``task_id`` before ``number`` that really happened (not interrupted,
    cancelled or planning): the recordings a replay has used up."""
    return (
        m.Attempt.select()
        .where(
            (m.Attempt.run == run_id) & (m.Attempt.task_id == task_id) & (m.Attempt.number < number)
            & (m.Attempt.phase != "planning") & m.Attempt.outcome.not_in(["interrupted", "cancelled"])
        )
        .count()
    )


# ---------------------------------------------------------------------------- recovery
def agent_worktrees(run_id: str) -> list[tuple[str, str]]:
    """(agent id, worktree path) of every agent the run ever had."""
    return list(m.Agent.select(m.Agent.agent_id, m.Agent.worktree).where(m.Agent.run == run_id)
                .order_by(m.Agent.id).tuples())


def task_status(run_id: str, task_id: str) -> str | None:
    """A task's stored status (None: no such task)."""
    return m.Task.select(m.Task.status).where((m.Task.run == run_id) & (m.Task.task_id == task_id)).scalar()


def pending_rollback_controls(run_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(control id, arguments) of the run's rollback commands not applied yet."""
    rows = (m.Control.select(m.Control.id, m.Control.args_json)
            .where((m.Control.run == run_id) & (m.Control.command == "rollback") & (m.Control.status == "pending"))
            .order_by(m.Control.id).tuples())
    return [(control_id, json.loads(args_json or "{}")) for control_id, args_json in rows]


# ---------------------------------------------------------------------------- planning
class IssueRow(NamedTuple):
    id: int
    issue_id: str
    title: str
    body: str


def run_issues(run_id: str) -> list[IssueRow]:
    return [IssueRow(*row) for row in m.Issue.select(m.Issue.id, m.Issue.issue_id, m.Issue.title, m.Issue.body)
            .where(m.Issue.run == run_id).order_by(m.Issue.id).tuples()]


def has_succeeded_attempt(run_id: str, task_id: str) -> bool:
    return m.Attempt.select().where(
        (m.Attempt.run == run_id) & (m.Attempt.task_id == task_id) & (m.Attempt.outcome == "succeeded")
    ).exists()


def task_ids(run_id: str) -> set[str]:
    return {task_id for (task_id,) in m.Task.select(m.Task.task_id).where(m.Task.run == run_id).tuples()}


def issues_with_tasks(run_id: str) -> set[str]:
    """The issue ids that have at least one task in the run."""
    return {issue_id for (issue_id,) in m.Task.select(m.Task.issue_id).where(m.Task.run == run_id).distinct().tuples()}


# ---------------------------------------------------------------------------- events
def event_kinds(run_id: str, seqs: list[int]) -> dict[int, str]:
    """seq -> kind of those of the run's events that exist."""
    rows = m.Event.select(m.Event.seq, m.Event.kind).where((m.Event.run == run_id) & (m.Event.seq.in_(seqs))).tuples()
    return {seq: kind for seq, kind in rows}
