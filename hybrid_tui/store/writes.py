"""Every write the engine (``hybrid_tui.runtime``) makes to the store, as named functions.

Room: store. Called by the runtime inside the transaction its coordinator loop opened
(``Store.write``); none of them opens one itself. The hot-path rows (task, agent, attempt,
lock) are staged (``Store.staged``: merged per row and written in batches just before the
commit); the rest are peewee queries built with the query builder, so they run on
PostgreSQL as on SQLite. No function here decides anything: the runtime says what to write.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from hybrid_tui.store import models as m
from hybrid_tui.store.db import Store
from hybrid_tui.store.runs import task_row


# ---------------------------------------------------------------------------- tasks
def stage_task_fields(store: Store, run_id: str, task_id: str, fields: dict[str, Any],
                      increments: dict[str, Any] | None = None) -> None:
    """Set a task row's columns (and add ``increments`` to numeric ones) at the commit.
    A task's ``status`` is written only by ``runtime/task_state.py``."""
    store.staged.update(m.Task, fields, where={"run": run_id, "task_id": task_id}, increments=increments)


def store_task_scores(store: Store, run_id: str, scores: list[tuple[str, float]], version: int) -> None:
    """Each queued task's priority score, as the console shows it from the start."""
    store.update_many(m.Task, ("score", "version"), ("run", "task_id"),
                      [(score, version, run_id, task_id) for task_id, score in scores])


def reset_in_flight_tasks(run_id: str, statuses: Iterable[str], now: float, version: int) -> list[tuple[str, str]]:
    """Tasks in one of ``statuses`` go back to ``ready`` (no agent, no retry time); returns
    their (task id, old status), in id order."""
    condition = (m.Task.run == run_id) & m.Task.status.in_(list(statuses))
    rows = list(m.Task.select(m.Task.task_id, m.Task.status).where(condition).order_by(m.Task.id).tuples())
    if rows:
        m.Task.update(status="ready", agent_id=None, retry_at=None, version=version, updated_at=now).where(
            condition).execute()
    return rows


def mark_task_done_from_branch(run_id: str, task_id: str, sha: str, now: float, version: int) -> None:
    """A task found integrated on the mission branch (recovery): done, with that commit."""
    m.Task.update(status="done", commit_sha=sha, finished_at=now, attention_reason="", failure_type=None,
                  version=version).where((m.Task.run == run_id) & (m.Task.task_id == task_id)).execute()


def mark_done_task_rolled_back(run_id: str, task_id: str, now: float, version: int) -> None:
    """A done task whose revert is on the mission branch (recovery): rolled back."""
    m.Task.update(status="rolled_back", finished_at=now, updated_at=now, version=version).where(
        (m.Task.run == run_id) & (m.Task.task_id == task_id) & (m.Task.status == "done")
    ).execute()


def insert_planned_tasks(run_id: str, issue_id: str, tasks: Iterable[Any], known: set[str], now: float,
                         version: int, approval_gate: Collection[str] = ()) -> None:
    """Tasks a planner produced during the run (those not in ``known``), with their
    dependencies and file operations."""
    for task in tasks:
        if task.task_id in known:
            continue
        row = task_row(run_id, issue_id, task, now, approval_gate)
        row["version"] = version
        m.Task.insert(**row).execute()
        for dep in task.dependencies:
            m.Dependency.insert(run=run_id, task_id=task.task_id, depends_on=dep).on_conflict_ignore().execute()
        for seq, op in enumerate(task.file_operations):
            m.FileOperation.insert(run=run_id, task_id=task.task_id, seq=seq, op=op.op, path=op.path).execute()


# ---------------------------------------------------------------------------- attempts
def stage_attempt_start(store: Store, run_id: str, fields: dict[str, Any]) -> None:
    """A new attempt row (``fields``: task_id, number, phase, agent_id, ...)."""
    fields["run"] = run_id
    store.staged.insert(m.Attempt, fields)


def stage_attempt_end(store: Store, run_id: str, task_id: str, number: int, fields: dict[str, Any]) -> None:
    """Close an attempt row (outcome, cost, tokens, ...)."""
    store.staged.update(m.Attempt, fields, where={"run": run_id, "task_id": task_id, "number": number})


def record_attempt_spend(store: Store, run_id: str, task_id: str, number: int, usage: Any, cost_usd: float) -> None:
    """What the API billed a running attempt so far (cumulative), on its row."""
    stage_attempt_end(store, run_id, task_id, number, {
        "cost_usd": cost_usd, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens})


def interrupt_running_attempts(run_id: str, reason: str, now: float, version: int,
                               spend: dict[tuple[str, int], tuple[Any, float]] | None = None) -> list[tuple[str, int, str]]:
    """Attempts still ``running`` become ``interrupted``; returns their (task id, number,
    agent id), in id order. What the API billed an attempt so far - ``spend`` ((task id,
    number) -> (usage, dollars)) from memory, else what its row holds - goes to its task."""
    rows = list(m.Attempt.select(m.Attempt.id, m.Attempt.task_id, m.Attempt.number, m.Attempt.agent_id,
                                 m.Attempt.started_at, m.Attempt.cost_usd)
                .where((m.Attempt.run == run_id) & (m.Attempt.outcome == "running")).order_by(m.Attempt.id).tuples())
    for row_id, task_id, number, _, started_at, stored_cost in rows:
        fields: dict[str, Any] = {"outcome": "interrupted", "failure_type": "interrupted", "failure_message": reason,
                                  "finished_at": now, "duration_seconds": max(0.0, now - started_at), "version": version}
        cost = float(stored_cost or 0.0)  # recorded turn by turn (record_attempt_spend)
        billed = (spend or {}).get((task_id, number))
        if billed is not None:
            usage, cost = billed
            fields.update(cost_usd=cost, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens)
        if cost:
            m.Task.update(cost_usd=m.Task.cost_usd + cost).where(
                (m.Task.run == run_id) & (m.Task.task_id == task_id)).execute()
        m.Attempt.update(**fields).where(m.Attempt.id == row_id).execute()
    return [(task_id, number, agent_id) for _, task_id, number, agent_id, _, _ in rows]


def start_planning_attempt(run_id: str, key: str, agent_id: str, backend: str, model: str, now: float,
                           version: int) -> int:
    """A new planning attempt (``task_id`` = ``key``); returns its row id."""
    number = m.Attempt.select().where((m.Attempt.run == run_id) & (m.Attempt.task_id == key)).count() + 1
    row = m.Attempt.create(run=run_id, task_id=key, number=number, phase="planning", agent_id=agent_id,
                           backend=backend, model=model, started_at=now, version=version)
    return row.id


def end_planning_attempt(attempt_row_id: int, fields: dict[str, Any]) -> None:
    m.Attempt.update(**fields).where(m.Attempt.id == attempt_row_id).execute()


# ---------------------------------------------------------------------------- locks, agents
def stage_lock_acquired(store: Store, run_id: str, path: str, task_id: str, acquired_at: float,
                        expires_at: float) -> None:
    store.staged.insert(m.FileLock, {"run": run_id, "path": path, "task_id": task_id, "acquired_at": acquired_at,
                                     "expires_at": expires_at}, or_replace=True)


def stage_lock_released(store: Store, run_id: str, path: str, task_id: str) -> None:
    store.staged.delete(m.FileLock, where={"run": run_id, "path": path, "task_id": task_id})


def release_all_locks(run_id: str) -> None:
    m.FileLock.delete().where(m.FileLock.run == run_id).execute()


def stage_agent_state(store: Store, run_id: str, agent_id: str, state: str, task_id: str | None, now: float,
                      version: int) -> None:
    store.staged.update(m.Agent, {"state": state, "task_id": task_id, "updated_at": now, "version": version},
                        where={"run": run_id, "agent_id": agent_id})


def stage_agent_worker(store: Store, run_id: str, agent_id: str, worker: str, now: float, version: int) -> None:
    """Which worker (``name@host``, or ``name@host lost``) runs the agent slot's attempts."""
    store.staged.update(m.Agent, {"worker": worker, "updated_at": now, "version": version},
                        where={"run": run_id, "agent_id": agent_id})


def idle_live_agents(run_id: str, now: float, version: int) -> None:
    """Every agent not retired is idle, with no task (recovery: nothing runs now)."""
    m.Agent.update(state="idle", task_id=None, version=version, updated_at=now).where(
        (m.Agent.run == run_id) & (m.Agent.state != "retired")
    ).execute()


def register_agents(store: Store, run_id: str, worktrees: dict[str, str], *, backend: str, model: str, now: float,
                    version: int) -> None:
    """New pool agents (agent id -> worktree path): an agent id seen before in this run
    (a resumed run) gets its row back, idle; a new one gets a row."""
    known = dict(
        m.Agent.select(m.Agent.agent_id, m.Agent.id)
        .where((m.Agent.run == run_id) & m.Agent.agent_id.in_(list(worktrees))).tuples()
    )
    for agent_id, worktree in worktrees.items():
        if agent_id in known:
            store.update_rows(m.Agent, {"state": "idle", "task_id": None, "worktree": worktree, "updated_at": now,
                                        "version": version}, where={"id": known[agent_id]})
        else:
            store.insert_row(m.Agent, {
                "run": run_id, "agent_id": agent_id, "role": "implementer", "backend": backend, "model": model,
                "worktree": worktree, "created_at": now, "updated_at": now, "version": version,
            })


# ---------------------------------------------------------------------------- integration
def record_integration_commit(run_id: str, task_id: str, sha: str, files: list[str], now: float) -> None:
    """The commit a task landed on the mission branch (replaces an earlier row of the task);
    also what recovery writes for an integration it found on the branch."""
    # ON CONFLICT ... DO UPDATE: the same upsert on SQLite and PostgreSQL (REPLACE is SQLite's own).
    m.IntegrationCommit.insert(run=run_id, task_id=task_id, sha=sha, files_json=json.dumps(files),
                               committed_at=now, reverted_by=None).on_conflict(
        conflict_target=[m.IntegrationCommit.run, m.IntegrationCommit.task_id],
        preserve=[m.IntegrationCommit.sha, m.IntegrationCommit.files_json, m.IntegrationCommit.committed_at,
                  m.IntegrationCommit.reverted_by],
    ).execute()


def mark_commit_reverted(commit_row_id: int, revert_sha: str) -> None:
    m.IntegrationCommit.update(reverted_by=revert_sha).where(m.IntegrationCommit.id == commit_row_id).execute()


# ---------------------------------------------------------------------------- the run row
def set_run_status(run_id: str, status: str, pause_reason: str, finished_at: float | None = None) -> None:
    fields: dict[str, Any] = {"status": status, "pause_reason": pause_reason}
    if finished_at is not None:
        fields["finished_at"] = finished_at
    m.Run.update(**fields).where(m.Run.id == run_id).execute()


def set_run_wait_reason(run_id: str, kind: str, reason: str) -> None:
    """Why ready tasks without a locked file wait (the scheduler's dispatch blocker)."""
    m.Run.update(wait_kind=kind, wait_reason=reason).where(m.Run.id == run_id).execute()


def add_forecast(run_id: str, kind: str, fields: dict[str, Any]) -> None:
    """One refresh of the run's time forecast (see ``models.Forecast``)."""
    m.Forecast.insert(run=run_id, kind=kind, **fields).execute()


def set_run_pool_target(run_id: str, size: int) -> None:
    m.Run.update(pool_target=size).where(m.Run.id == run_id).execute()


def set_run_budgets(run_id: str, mission_usd: float, retry_usd: float) -> None:
    m.Run.update(mission_budget_usd=mission_usd, retry_budget_usd=retry_usd).where(m.Run.id == run_id).execute()


def set_run_coordinator(run_id: str, pid: int, host: str, now: float) -> None:
    """The process now driving the run (its heartbeat starts now)."""
    m.Run.update(coordinator_pid=pid, coordinator_host=host, heartbeat_at=now).where(m.Run.id == run_id).execute()


def set_run_heartbeat(run_id: str, now: float) -> None:
    """A plain update (no version bump): the console need not redraw for a heartbeat."""
    m.Run.update(heartbeat_at=now).where(m.Run.id == run_id).execute()


# ---------------------------------------------------------------------------- controls
def settle_control(control_id: int, status: str, result: str, applied_at: float) -> None:
    """An operator command's row: ``applied`` or ``rejected``, with the result text."""
    m.Control.update(status=status, result=result, applied_at=applied_at).where(m.Control.id == control_id).execute()


# ---------------------------------------------------------------------------- resource samples
def add_resource_sample(run_id: str, now: float, fields: dict[str, Any]) -> None:
    m.ResourceSample.create(run=run_id, ts=now, **fields)


def downsample_resource_samples(run_id: str, before: float, bucket_seconds: float) -> int:
    """Before ``before``, keep the first sample of each ``bucket_seconds`` bucket; returns
    how many rows were deleted."""
    old = list(
        m.ResourceSample.select(m.ResourceSample.id, m.ResourceSample.ts)
        .where((m.ResourceSample.run == run_id) & (m.ResourceSample.ts < before))
        .order_by(m.ResourceSample.ts, m.ResourceSample.id)
        .tuples()
    )
    seen: set[int] = set()
    doomed: list[int] = []
    for row_id, ts in old:
        key = int(ts // bucket_seconds)
        if key in seen:
            doomed.append(row_id)
        else:
            seen.add(key)
    for start in range(0, len(doomed), 500):
        m.ResourceSample.delete().where(m.ResourceSample.id.in_(doomed[start:start + 500])).execute()
    return len(doomed)
