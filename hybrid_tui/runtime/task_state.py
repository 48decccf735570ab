"""Where a task's state changes in the store: the scheduler's change records, applied.

Room: runtime. The ONE place that writes a task's ``status`` (through ``store/writes.py``):
the core's change records (:func:`apply_changes`), and the two corrections crash recovery
makes from what it finds (:func:`requeue_in_flight`, :func:`mark_done_from_branch`,
:func:`mark_rolled_back_from_branch`). Runs inside the loop's transaction; what the loop
must do after the commit (cancel attempts, forget a removed agent...) goes on the
transaction's :class:`~hybrid_tui.runtime.context.Effects`.

Task, agent and lock rows are staged (``Store.staged``): the several updates a task gets in
one transaction reach the database as one, at the commit.
"""

from __future__ import annotations

from typing import Any, Iterable

from hybrid_tui.core.changes import (
    AgentChanged,
    Alert,
    BreakerChanged,
    CancelRunning,
    LockAcquired,
    LockReleased,
    PauseChanged,
    PoolTarget,
    TaskTransition,
    TaskWaiting,
)
from hybrid_tui.store import writes
from hybrid_tui.runtime.context import RunContext, Transaction
from hybrid_tui.vocabulary import IN_FLIGHT_STATUSES, QUEUED_STATUSES, TERMINAL_STATUSES, UNSUCCESSFUL_STATUSES

ATTENTION = UNSUCCESSFUL_STATUSES  # a task that ends in one of these needs the operator
_WAITS_FOR_OPERATOR = ATTENTION | {"awaiting_approval"}  # its reason is shown in the attention view
_QUEUED_OR_RUNNING = QUEUED_STATUSES | {"running"}  # the score the queue ordered it by is shown
_CLEARS_ATTENTION = frozenset(("ready", "pending", "running", "done"))
_FREES_AGENT = QUEUED_STATUSES


class UnknownChange(TypeError):
    """The core returned a change record this runtime does not know how to store."""


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def apply_changes(ctx: RunContext, changes: Iterable[Any] | None, now: float) -> None:
    """Store ``changes`` (in order) in the open transaction, or one of their own; the loop
    wakes after the commit."""
    if not changes:
        return
    with ctx.transaction() as txn:
        write_changes(ctx, txn, changes, now)
        txn.effects.wake = True


def write_changes(ctx: RunContext, txn: Transaction, changes: Iterable[Any], now: float) -> None:
    """Write each change record in ``txn``; raises :class:`UnknownChange` on a record type
    this module does not handle (nothing is silently dropped)."""
    store, run, version, effects = ctx.store, ctx.run_id, txn.version, txn.effects
    waits: list[TaskWaiting] = []
    for change in changes:
        match change:
            case TaskTransition():
                _write_transition(ctx, change, now, version)
            case LockAcquired():
                writes.stage_lock_acquired(store, run, change.path, change.task_id, change.acquired_at,
                                           change.expires_at)
            case LockReleased():
                writes.stage_lock_released(store, run, change.path, change.task_id)
            case AgentChanged():
                removed = change.state == "removed"
                writes.stage_agent_state(store, run, change.agent_id, "retired" if removed else change.state,
                                         change.task_id, now, version)
                if removed:
                    effects.removed_agents.append(change.agent_id)
            case Alert():
                level = {"critical": "error"}.get(change.level, change.level)
                if change.kind == "budget_exhausted" and change.data.get("tasks"):
                    # Refused at dispatch, with no attempt: the task row carries the failure type the
                    # console's attention view and the report show, as for any failed attempt.
                    for task_id in change.data["tasks"]:
                        writes.stage_task_fields(store, run, task_id,
                                                 {"failure_type": "budget_exhausted", "version": version})
                ctx.events.add(f"alert.{change.kind}", change.message, level=level,
                               **{"data": change.data} if change.data else {})
            case CancelRunning():
                ctx.events.add("attempt.cancel", change.reason, level="warning", task_id=change.task_id,
                               attempt=change.attempt, agent_id=change.agent_id)
                effects.cancels.append(change)
            case PoolTarget():
                writes.set_run_pool_target(run, change.size)
                ctx.events.add("pool.target", f"pool target {change.size}" + (f": {change.reason}" if change.reason else ""),
                               size=change.size)
            case PauseChanged():
                writes.set_run_status(run, "paused" if change.paused else "running",
                                      change.reason if change.paused else "")
                effects.policy_paused = bool(change.paused)
                ctx.events.add("run.paused" if change.paused else "run.resumed", change.reason,
                               level="warning" if change.paused else "info")
            case BreakerChanged():
                ctx.events.add("breaker." + change.state, change.reason or f"{change.backend} breaker {change.state}",
                               level="warning", backend=change.backend)
            case TaskWaiting():
                waits.append(change)  # one event for the lot, below
            case _:
                raise UnknownChange(f"no store write for the core change record {type(change).__name__}: {change!r}")
    if waits:
        _write_waits(ctx, waits)


def _write_waits(ctx: RunContext, waits: list[TaskWaiting]) -> None:
    """ONE ``task.waiting`` event for the ready tasks a dispatch round found held back (an
    event per task would add a row to most tasks of a run whose files contend): its fields
    map each task to why (``holder``: the task holding its file)."""
    fields = {"waits": {w.task_id: {"kind": w.kind, "message": w.message, "holder": w.holder} for w in waits}}
    if len(waits) == 1:
        w = waits[0]
        ctx.events.add("task.waiting", w.message, task_id=w.task_id, **fields)
        return
    shown = "; ".join(f"{w.task_id}: {w.message}" for w in waits[:5])
    more = f"; and {len(waits) - 5} more" if len(waits) > 5 else ""
    ctx.events.add("task.waiting", f"{len(waits)} ready tasks held back: {shown}{more}", **fields)


def _write_transition(ctx: RunContext, ch: TaskTransition, now: float, version: int) -> None:
    new, old = _status(ch.new), _status(ch.old)
    fields: dict[str, Any] = {"status": new, "updated_at": now, "version": version, "retry_at": ch.retry_at}
    if new in _QUEUED_OR_RUNNING:
        # The console shows the score the queue was ordered by when the task last moved.
        fields["score"] = ctx.scheduler.shown_score(ch.task_id)
    if new in _WAITS_FOR_OPERATOR or new == "retry_wait":
        fields["attention_reason"] = ch.reason if new in _WAITS_FOR_OPERATOR else ""
    elif new in _CLEARS_ATTENTION:
        fields["attention_reason"] = ""
    if new == "running":
        fields["started_at"] = now
    if new in _FREES_AGENT:
        fields["agent_id"] = None
    if new in TERMINAL_STATUSES:
        fields["finished_at"] = now
    writes.stage_task_fields(ctx.store, ctx.run_id, ch.task_id, fields)
    level = "warning" if new in ATTENTION else "info"
    text = f"{old} -> {new}" + (f": {ch.reason}" if ch.reason else "")
    ctx.events.add("task.status", text, level=level, task_id=ch.task_id, old=old, new=new)


# ---------------------------------------------------------------------------- recovery's corrections
def requeue_in_flight(ctx: RunContext, txn: Transaction, reason: str, now: float) -> list[str]:
    """No attempt runs now (start-up, or the run stopped): tasks in flight go back to
    ``ready``. Returns their ids."""
    moved = writes.reset_in_flight_tasks(ctx.run_id, IN_FLIGHT_STATUSES, now, txn.version)
    for task_id, old in moved:
        ctx.events.add("task.status", f"{old} -> ready: {reason}", level="warning", task_id=task_id, old=old,
                       new="ready")
    return [task_id for task_id, _ in moved]


def mark_done_from_branch(ctx: RunContext, txn: Transaction, task_id: str, old: str, sha: str, now: float) -> None:
    """The task's commit is on the mission branch though the store did not say so: done."""
    ctx.events.add("task.status", f"{old} -> done: found on the mission branch ({sha[:10]})",
                   task_id=task_id, old=old, new="done")
    writes.mark_task_done_from_branch(ctx.run_id, task_id, sha, now, txn.version)


def mark_rolled_back_from_branch(ctx: RunContext, txn: Transaction, task_id: str, text: str, now: float) -> None:
    """The done task's revert is on the mission branch though the store did not say so."""
    writes.mark_done_task_rolled_back(ctx.run_id, task_id, now, txn.version)
    ctx.events.add("task.status", f"done -> rolled_back: {text}", task_id=task_id, old="done", new="rolled_back")
