"""Reads for the console, the views, the report and the app commands: one function per
question, plain records back (:mod:`hybrid_tui.store.records`, tuples, numbers).

Room: store. Everything here SELECTs from the open store (``open_store`` binds the models
to it); nothing writes. The queries are peewee's query builder, so the same code runs on
PostgreSQL; the one SQLite-only hint (the console's changed-tasks read) is isolated in
:func:`_on_sqlite_read_task_version_index`. Rows come back as raw cursor values made into
named tuples (no peewee row object and no per-value conversion: a console tick may read
10,000 rows). The spend and projection aggregates live in :mod:`hybrid_tui.store.cost_queries`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import peewee as pw

from hybrid_tui.core.rollback_scope import rollback_scope as scope_of_rollback
from hybrid_tui.store import models as m
from hybrid_tui.store.db import StoreError, snapshot
from hybrid_tui.store.records import (
    AgentRecord,
    AgentRow,
    AttemptRecord,
    ControlRecord,
    EventRecord,
    ForecastRecord,
    IntegrationCommitRecord,
    IssueRecord,
    LockRow,
    ResourceSampleRecord,
    RunRecord,
    TaskRecord,
    TaskRow,
    WaitRecord,
)

Record = TypeVar("Record", bound=tuple)

# Tasks a human should look at: a reason was written, or they failed / are blocked.
ATTENTION_STATUSES = ("failed", "blocked")


# ------------------------------------------------------------------ helpers


def _columns(model: type[m.BaseModel], record: type[tuple]) -> list[pw.Field]:
    """The model's columns named like the record's fields (``run_id`` is the run foreign key)."""
    return [model.run if name == "run_id" else getattr(model, name) for name in record._fields]  # type: ignore[attr-defined]


def _select(record: type[Record], model: type[m.BaseModel]) -> pw.ModelSelect:
    return model.select(*_columns(model, record))


def _records(record: type[Record], query: pw.Query) -> list[Record]:
    """The rows of ``query`` as ``record``s, straight from the cursor."""
    return list(map(record._make, m.database_proxy.execute(query)))  # type: ignore[attr-defined]


def _first(record: type[Record], query: pw.Query) -> Record | None:
    rows = _records(record, query.limit(1))
    return rows[0] if rows else None


def _scalar(query: pw.Query) -> Any:
    """The first column of the first row (None when there is none)."""
    row = m.database_proxy.execute(query).fetchone()
    return row[0] if row else None


def _pairs(query: pw.Query) -> list[tuple]:
    return [tuple(row) for row in m.database_proxy.execute(query)]


@contextlib.contextmanager
def read_snapshot_on_this_thread() -> Iterator[None]:
    """One read snapshot for a thread that may not hold a connection yet (the metrics
    server's request threads): opens this thread's connection for the duration if needed."""
    db = m.database_proxy.obj
    opened = db.is_closed()  # peewee connections are per thread
    if opened:
        db.connect()
    try:
        with snapshot(db):
            yield
    finally:
        if opened:
            db.close()


# ------------------------------------------------------------------ runs


def find_run(run_id: str) -> RunRecord | None:
    return _first(RunRecord, _select(RunRecord, m.Run).where(m.Run.id == run_id))


def run_record(run_id: str) -> RunRecord:
    """The run; StoreError when the store has no such run."""
    run = find_run(run_id)
    if run is None:
        raise StoreError(f"unknown run {run_id!r}")
    return run


def first_run_id() -> str | None:
    """The id of the store's first run (a run folder's store holds one)."""
    return _scalar(m.Run.select(m.Run.id).order_by(m.Run.created_at).limit(1))


def run_ids() -> list[str]:
    return [run_id for (run_id,) in _pairs(m.Run.select(m.Run.id))]


def run_version(run_id: str) -> int | None:
    """The run's change counter (bumped by every write transaction)."""
    return _scalar(m.Run.select(m.Run.version).where(m.Run.id == run_id))


def issue_records(run_id: str) -> list[IssueRecord]:
    return _records(IssueRecord, _select(IssueRecord, m.Issue).where(m.Issue.run == run_id).order_by(m.Issue.id))


# ------------------------------------------------------------------ tasks

# The TaskRow columns (no spec_json, empty strings for NULLs): the console tick's main read.
_TASK_ROW_COLUMNS = (
    m.Task.task_id, m.Task.title, m.Task.status, m.Task.score, pw.fn.COALESCE(m.Task.agent_id, ""),
    m.Task.attempts, m.Task.cost_usd, m.Task.created_at, m.Task.started_at, m.Task.finished_at,
    pw.fn.COALESCE(m.Task.failure_type, ""), pw.fn.COALESCE(m.Task.attention_reason, ""),
    pw.fn.COALESCE(m.Task.commit_sha, ""),
)
_NEEDS_ATTENTION = (m.Task.attention_reason != "") | m.Task.status.in_(ATTENTION_STATUSES)


def _on_sqlite_read_task_version_index(query: pw.ModelSelect) -> pw.ModelSelect:
    """``query`` (on the task table, filtered by run and ``version >``) told to use the
    version index on SQLite.

    Left alone SQLite picks the run index, which reads every task of the run (stepping over
    its spec_json) to test its version; the version index reads only the rows that changed:
    the console's 10,000-task tick depends on it. ``INDEXED BY`` is SQLite-only: a
    PostgreSQL store runs the query as it is (its planner weighs both indexes by their
    statistics; a composite ``(run_id, version)`` index would be its tool if it chose
    badly). ``task_version`` is the index peewee makes for ``Task.version``'s ``index=True``.
    """
    if not isinstance(m.database_proxy.obj, pw.SqliteDatabase):
        return query
    return query.from_(pw.NodeList((m.Task, pw.SQL('INDEXED BY "task_version"'))))


def changed_task_rows(run_id: str, since_version: int) -> list[TaskRow]:
    """The console rows of the tasks written after ``since_version``, in creation order."""
    query = (
        m.Task.select(*_TASK_ROW_COLUMNS)
        .where((m.Task.run == run_id) & (m.Task.version > since_version))
        .order_by(m.Task.id)
    )
    return _records(TaskRow, _on_sqlite_read_task_version_index(query))


def attention_task_rows(run_id: str) -> list[TaskRow]:
    """Tasks needing a human, most recently changed first."""
    query = (
        m.Task.select(*_TASK_ROW_COLUMNS)
        .where((m.Task.run == run_id) & _NEEDS_ATTENTION)
        .order_by(m.Task.updated_at.desc(), m.Task.id)
    )
    return _records(TaskRow, query)


def attention_count(run_id: str) -> int:
    return _scalar(m.Task.select(pw.fn.COUNT(m.Task.id)).where((m.Task.run == run_id) & _NEEDS_ATTENTION)) or 0


def task_status_counts(run_id: str) -> dict[str, int]:
    """status -> number of tasks (statuses no task has are absent)."""
    query = m.Task.select(m.Task.status, pw.fn.COUNT(m.Task.id)).where(m.Task.run == run_id).group_by(m.Task.status)
    return {status: n for status, n in _pairs(query)}


def task_statuses(run_id: str, task_ids: Iterable[str]) -> dict[str, str]:
    """task id -> status, for the given tasks that exist."""
    ids = list(task_ids)
    if not ids:
        return {}
    query = m.Task.select(m.Task.task_id, m.Task.status).where((m.Task.run == run_id) & m.Task.task_id.in_(ids))
    return dict(_pairs(query))


def task_record(run_id: str, task_id: str) -> TaskRecord | None:
    return _first(TaskRecord, _select(TaskRecord, m.Task).where((m.Task.run == run_id) & (m.Task.task_id == task_id)))


def task_records(run_id: str) -> list[TaskRecord]:
    """Every task of the run, whole, in creation order."""
    return _records(TaskRecord, _select(TaskRecord, m.Task).where(m.Task.run == run_id).order_by(m.Task.id))


def dependencies_of(run_id: str, task_id: str) -> list[str]:
    query = m.Dependency.select(m.Dependency.depends_on).where(
        (m.Dependency.run == run_id) & (m.Dependency.task_id == task_id)
    )
    return [depends_on for (depends_on,) in _pairs(query)]


def direct_dependents(run_id: str, task_id: str) -> list[str]:
    """The tasks that depend on ``task_id``, by id."""
    query = (
        m.Dependency.select(m.Dependency.task_id)
        .where((m.Dependency.run == run_id) & (m.Dependency.depends_on == task_id))
        .order_by(m.Dependency.task_id)
    )
    return [dependent for (dependent,) in _pairs(query)]


def dependency_pairs(run_id: str) -> list[tuple[str, str]]:
    """(task id, the task it depends on) for every dependency of the run."""
    return _pairs(m.Dependency.select(m.Dependency.task_id, m.Dependency.depends_on).where(m.Dependency.run == run_id))


def file_operation_paths(run_id: str, task_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(task id, path) of every file operation of the given tasks."""
    query = m.FileOperation.select(m.FileOperation.task_id, m.FileOperation.path).where(
        (m.FileOperation.run == run_id) & m.FileOperation.task_id.in_(list(task_ids))
    )
    return _pairs(query)


# ------------------------------------------------------------------ attempts


def attempt_records(run_id: str) -> list[AttemptRecord]:
    """Every attempt of the run in the order they started."""
    query = _select(AttemptRecord, m.Attempt).where(m.Attempt.run == run_id).order_by(m.Attempt.started_at, m.Attempt.id)
    return _records(AttemptRecord, query)


def task_attempts(run_id: str, task_id: str) -> list[AttemptRecord]:
    query = (
        _select(AttemptRecord, m.Attempt)
        .where((m.Attempt.run == run_id) & (m.Attempt.task_id == task_id))
        .order_by(m.Attempt.number)
    )
    return _records(AttemptRecord, query)


def attempts_changed_since(run_id: str, since_version: int) -> bool:
    query = m.Attempt.select(m.Attempt.id).where((m.Attempt.run == run_id) & (m.Attempt.version > since_version))
    return _scalar(query.limit(1)) is not None


def real_attempt_numbers(run_id: str, outcomes: Iterable[str]) -> list[tuple[str, int]]:
    """(task id, attempt number) of the implementing attempts that ended in ``outcomes``,
    by task then number."""
    query = (
        m.Attempt.select(m.Attempt.task_id, m.Attempt.number)
        .where((m.Attempt.run == run_id) & (m.Attempt.phase != "planning") & m.Attempt.outcome.in_(list(outcomes)))
        .order_by(m.Attempt.task_id, m.Attempt.number)
    )
    return _pairs(query)


def agent_busy_spans(run_id: str, window_start: float, now: float) -> list[tuple[str, float, float | None]]:
    """(agent id, started, finished or None) of the attempts overlapping [window_start, now)."""
    query = m.Attempt.select(m.Attempt.agent_id, m.Attempt.started_at, m.Attempt.finished_at).where(
        (m.Attempt.run == run_id)
        & (m.Attempt.agent_id != "")
        & (m.Attempt.finished_at.is_null() | (m.Attempt.finished_at > window_start))
        & (m.Attempt.started_at < now)
    )
    return _pairs(query)


def attempt_outcome_groups(run_id: str) -> list[tuple[str, str, str | None, int, float]]:
    """(phase, outcome, failure type, attempts, dollars) per group of the run's attempts."""
    query = (
        m.Attempt.select(m.Attempt.phase, m.Attempt.outcome, m.Attempt.failure_type, pw.fn.COUNT(m.Attempt.id),
                         pw.fn.COALESCE(pw.fn.SUM(m.Attempt.cost_usd), 0))
        .where(m.Attempt.run == run_id)
        .group_by(m.Attempt.phase, m.Attempt.outcome, m.Attempt.failure_type)
    )
    return _pairs(query)


# ------------------------------------------------------------------ agents, locks, samples


def changed_agent_rows(run_id: str, since_version: int) -> list[AgentRow]:
    query = (
        m.Agent.select(m.Agent.agent_id, m.Agent.role, m.Agent.backend, m.Agent.model, m.Agent.state,
                       pw.fn.COALESCE(m.Agent.task_id, ""), m.Agent.tasks_done, m.Agent.worker)
        .where((m.Agent.run == run_id) & (m.Agent.version > since_version))
        .order_by(m.Agent.id)
    )
    return _records(AgentRow, query)


def agent_records(run_id: str) -> list[AgentRecord]:
    """Every agent of the run, by id."""
    return _records(AgentRecord, _select(AgentRecord, m.Agent).where(m.Agent.run == run_id).order_by(m.Agent.agent_id))


def live_implementer_count(run_id: str) -> int:
    """Implementer slots not retired."""
    query = m.Agent.select(pw.fn.COUNT(m.Agent.id)).where(
        (m.Agent.run == run_id) & (m.Agent.state != "retired") & (m.Agent.role == "implementer")
    )
    return _scalar(query) or 0


def file_locks(run_id: str) -> list[LockRow]:
    query = _select(LockRow, m.FileLock).where(m.FileLock.run == run_id).order_by(m.FileLock.path)
    return _records(LockRow, query)


def lock_holders(run_id: str) -> dict[str, str]:
    """path -> the task holding its lock."""
    return dict(_pairs(m.FileLock.select(m.FileLock.path, m.FileLock.task_id).where(m.FileLock.run == run_id)))


# ------------------------------------------------------------------ waits and forecasts

#: Queued statuses a task waits in for something other than its dependencies.
WAITING_STATUSES = ("ready", "retry_wait", "awaiting_approval")


def wait_reasons(run_id: str, task_ids: Iterable[str] | None = None) -> dict[str, WaitRecord]:
    """Why each ``ready``, ``retry_wait`` or ``awaiting_approval`` task (of ``task_ids``,
    default all) is not running: its backoff deadline; an operator's approval; the run paused; a declared file whose lock another task
    holds (``holder``); else what the scheduler said holds every ready task back (no free
    agent, the budget, an open circuit), stored on the run. Derived from stored rows at
    read time, so it is never stale and costs the engine nothing."""
    run = _first(RunRecord, _select(RunRecord, m.Run).where(m.Run.id == run_id))
    if run is None:
        return {}
    query = m.Task.select(m.Task.task_id, m.Task.status, m.Task.retry_at).where(
        (m.Task.run == run_id) & m.Task.status.in_(WAITING_STATUSES))
    if task_ids is not None:
        query = query.where(m.Task.task_id.in_(list(task_ids)))
    rows = _pairs(query.order_by(m.Task.id))
    ready = [tid for tid, status, _ in rows if status == "ready"]
    holders = lock_holders(run_id) if ready else {}
    held: dict[str, tuple[str, str]] = {}  # task -> (path, holder)
    if holders:
        for tid, path in file_operation_paths(run_id, ready):
            holder = holders.get(path)
            if holder is not None and holder != tid and tid not in held:
                held[tid] = (path, holder)
    out: dict[str, WaitRecord] = {}
    for tid, status, retry_at in rows:
        if status == "retry_wait":
            out[tid] = WaitRecord(tid, "backoff", "backoff before its retry", until=retry_at)
        elif status == "awaiting_approval":
            out[tid] = WaitRecord(tid, "approval", "awaiting an operator's approval")
        elif run.status == "paused":
            out[tid] = WaitRecord(tid, "paused", f"paused: {run.pause_reason}" if run.pause_reason else "paused")
        elif tid in held:
            path, holder = held[tid]
            out[tid] = WaitRecord(tid, "lock", f"{path} held by task {holder}", holder=holder)
        elif run.wait_reason:
            out[tid] = WaitRecord(tid, run.wait_kind or "agent", run.wait_reason)
        else:
            out[tid] = WaitRecord(tid, "agent", "next in line for an agent")
    return out


def latest_forecast(run_id: str) -> ForecastRecord | None:
    """The run's newest time forecast (None before the first)."""
    query = _select(ForecastRecord, m.Forecast).where(m.Forecast.run == run_id).order_by(m.Forecast.id.desc())
    return _first(ForecastRecord, query)


def start_forecast(run_id: str) -> ForecastRecord | None:
    """The forecast made when the run started (its ``kind`` is ``start``)."""
    query = _select(ForecastRecord, m.Forecast).where(
        (m.Forecast.run == run_id) & (m.Forecast.kind == "start")).order_by(m.Forecast.id)
    return _first(ForecastRecord, query)


def forecast_records(run_id: str) -> list[ForecastRecord]:
    """Every forecast of the run, oldest first."""
    return _records(ForecastRecord, _select(ForecastRecord, m.Forecast).where(m.Forecast.run == run_id)
                    .order_by(m.Forecast.id))


def task_estimates_and_actuals(run_id: str) -> list[tuple[str, str, float, float]]:
    """(task id, status, estimated minutes, seconds its attempts ran in all) per task: the
    estimate next to what it took."""
    spent = (m.Attempt.select(m.Attempt.task_id, pw.fn.SUM(m.Attempt.duration_seconds).alias("seconds"))
             .where((m.Attempt.run == run_id) & (m.Attempt.phase != "planning")).group_by(m.Attempt.task_id)
             .alias("spent"))
    query = (m.Task.select(m.Task.task_id, m.Task.status, m.Task.estimated_duration_minutes,
                           pw.fn.COALESCE(spent.c.seconds, 0.0))
             .join(spent, pw.JOIN.LEFT_OUTER, on=(spent.c.task_id == m.Task.task_id))
             .where(m.Task.run == run_id).order_by(m.Task.id))
    return _pairs(query)


def resource_samples(run_id: str, limit: int = 60) -> list[ResourceSampleRecord]:
    """The latest ``limit`` resource samples, oldest first."""
    query = (
        _select(ResourceSampleRecord, m.ResourceSample)
        .where(m.ResourceSample.run == run_id)
        .order_by(m.ResourceSample.ts.desc())
        .limit(limit)
    )
    return _records(ResourceSampleRecord, query)[::-1]


def latest_resource_sample(run_id: str) -> ResourceSampleRecord | None:
    query = (
        _select(ResourceSampleRecord, m.ResourceSample)
        .where(m.ResourceSample.run == run_id)
        .order_by(m.ResourceSample.ts.desc(), m.ResourceSample.id.desc())
    )
    return _first(ResourceSampleRecord, query)


# ------------------------------------------------------------------ integration commits


def integration_commit(run_id: str, task_id: str) -> IntegrationCommitRecord | None:
    query = _select(IntegrationCommitRecord, m.IntegrationCommit).where(
        (m.IntegrationCommit.run == run_id) & (m.IntegrationCommit.task_id == task_id)
    )
    return _first(IntegrationCommitRecord, query)


def live_commits_since(run_id: str, commit: IntegrationCommitRecord) -> list[IntegrationCommitRecord]:
    """The other commits, not reverted, landed at or after ``commit``, oldest first: what a
    rollback of ``commit`` reverts around (the coordinator's check and the console's preview
    of it read the same rows)."""
    query = (
        _select(IntegrationCommitRecord, m.IntegrationCommit)
        .where(
            (m.IntegrationCommit.run == run_id)
            & (m.IntegrationCommit.id != commit.id)
            & (m.IntegrationCommit.committed_at >= commit.committed_at)
            & m.IntegrationCommit.reverted_by.is_null()
        )
        .order_by(m.IntegrationCommit.committed_at, m.IntegrationCommit.id)
    )
    return _records(IntegrationCommitRecord, query)


def live_commits(run_id: str) -> list[IntegrationCommitRecord]:
    """Every integrated commit of the run not reverted, oldest first (what a task's
    git_conflict may have met: the console names them in its detail)."""
    query = (
        _select(IntegrationCommitRecord, m.IntegrationCommit)
        .where((m.IntegrationCommit.run == run_id) & m.IntegrationCommit.reverted_by.is_null())
        .order_by(m.IntegrationCommit.committed_at, m.IntegrationCommit.id)
    )
    return _records(IntegrationCommitRecord, query)


def rollback_scope(run_id: str, task_id: str) -> list[IntegrationCommitRecord]:
    """The live commits a cascading rollback of ``task_id`` reverts, oldest first: its own
    and every later one that depends on it or touched its files (``core.rollback_scope``).
    Empty when the task has no live commit. The coordinator and every preview read this."""
    root = integration_commit(run_id, task_id)
    if root is None or root.reverted_by:
        return []
    return scope_of_rollback(root, live_commits_since(run_id, root), dependency_pairs(run_id))


# ------------------------------------------------------------------ events


def events_after(run_id: str, after_seq: int, limit: int | None = None) -> list[EventRecord]:
    """The events after ``after_seq`` (at most ``limit``), in order."""
    query = (
        _select(EventRecord, m.Event)
        .where((m.Event.run == run_id) & (m.Event.seq > after_seq))
        .order_by(m.Event.seq)
    )
    return _records(EventRecord, query if limit is None else query.limit(limit))


def latest_events(run_id: str, limit: int) -> list[EventRecord]:
    """The run's last ``limit`` events, oldest first."""
    query = _select(EventRecord, m.Event).where(m.Event.run == run_id).order_by(m.Event.seq.desc()).limit(limit)
    return _records(EventRecord, query)[::-1]


def event_records(run_id: str) -> list[EventRecord]:
    """Every event of the run, in order."""
    return _records(EventRecord, _select(EventRecord, m.Event).where(m.Event.run == run_id).order_by(m.Event.seq))


def last_event_seq(run_id: str) -> int:
    """The number of the run's latest event (0 without one)."""
    return int(_scalar(m.Event.select(pw.fn.MAX(m.Event.seq)).where(m.Event.run == run_id)) or 0)


def status_events_after(run_id: str, after_seq: int) -> list[tuple[int, float, str | None, str]]:
    """(seq, ts, task id, data_json) of the ``task.status`` events after ``after_seq``, in order."""
    query = (
        m.Event.select(m.Event.seq, m.Event.ts, m.Event.task_id, m.Event.data_json)
        .where((m.Event.run == run_id) & (m.Event.seq > after_seq) & (m.Event.kind == "task.status"))
        .order_by(m.Event.seq)
    )
    return _pairs(query)


# ------------------------------------------------------------------ controls


def rejected_controls(run_id: str, command: str, limit: int = 50) -> list[ControlRecord]:
    """The latest rejected ``command`` controls of the run, newest first."""
    query = (
        _select(ControlRecord, m.Control)
        .where((m.Control.run == run_id) & (m.Control.command == command) & (m.Control.status == "rejected"))
        .order_by(m.Control.id.desc())
        .limit(limit)
    )
    return _records(ControlRecord, query)


def settled_controls(control_ids: Iterable[int]) -> list[ControlRecord]:
    """Those of ``control_ids`` the coordinator has applied or rejected."""
    ids = list(control_ids)
    if not ids:
        return []
    query = _select(ControlRecord, m.Control).where(m.Control.id.in_(ids) & (m.Control.status != "pending"))
    return _records(ControlRecord, query)
