"""Where a control command is applied: the operator's pause, resume, retry, cancel,
cancel_dependents, rollback, scale, budget, stop (rows of the Control table). Each returns
``(applied, result text)``; the coordinator marks the row applied or rejected with that text.

Room: runtime. Decisions stay in the scheduler (its change records stored by
``task_state``); rollback's git work runs in a thread. Stopping the run is an effect the
loop applies after the commit.
"""

from __future__ import annotations

from typing import Any

import anyio

from hybrid_tui.core.changes import TaskTransition
from hybrid_tui.store import queries, writes
from hybrid_tui.runtime.context import RunContext
from hybrid_tui.runtime.faults import crash_point
from hybrid_tui.runtime.task_state import apply_changes, write_changes

COMMANDS = ("pause", "resume", "retry", "cancel", "cancel_dependents", "rollback", "scale", "budget", "stop", "approve",
            "reject")


def _task_arg(ctx: RunContext, args: dict[str, Any]) -> str:
    task_id = args.get("task_id") or args.get("task")
    if not task_id or task_id not in ctx.specs:
        raise LookupError(f"unknown task {task_id!r}")
    return str(task_id)


async def apply_control(ctx: RunContext, command: str, args: dict[str, Any], now: float) -> tuple[bool, str]:
    s = ctx.scheduler
    if command == "pause":
        reason = args.get("reason") or "paused by operator"
        apply_changes(ctx, s.pause(reason, now), now)
        return True, reason
    if command == "resume":
        apply_changes(ctx, s.resume(now), now)
        return True, "dispatching resumed"
    if command == "stop":
        with ctx.transaction() as txn:
            txn.effects.stop = args.get("reason") or "stopped by operator"
        return True, "stopping"
    if command == "scale":
        size = args.get("size", args.get("n"))
        size = None if size in (None, "auto") else int(size)
        apply_changes(ctx, s.scale(size, now), now)
        return True, f"pool target {size}" if size is not None else "pool back to autoscaling"
    if command == "retry":
        task_id = _task_arg(ctx, args)
        changes = s.retry(task_id, now)
        if not changes:
            return False, f"task {task_id} is not failed, blocked, cancelled or rolled back"
        apply_changes(ctx, changes, now)
        return True, f"task {task_id} queued again"
    if command == "approve":
        task_id = _task_arg(ctx, args)
        changes = s.approve(task_id, now)
        if not changes:
            return False, f"task {task_id} is {s.status(task_id).value}, not awaiting approval"
        apply_changes(ctx, changes, now)
        return True, f"task {task_id} approved"
    if command == "reject":
        task_id = _task_arg(ctx, args)
        reason = str(args.get("reason") or "")
        changes = s.reject(task_id, reason, now)
        if not changes:
            return False, f"task {task_id} is {s.status(task_id).value}, not awaiting approval"
        with ctx.transaction() as txn:
            write_changes(ctx, txn, changes, now)
            writes.stage_task_fields(ctx.store, ctx.run_id, task_id, {"failure_type": "rejected", "version": txn.version})
            txn.effects.wake = True
        return True, f"task {task_id} rejected" + (f": {reason}" if reason else "")
    if command == "cancel":
        task_id = _task_arg(ctx, args)
        changes = s.cancel(task_id, now)
        if not changes:
            return False, (f"task {task_id} is {s.status(task_id).value}: only a task that is queued, blocked, "
                           "running or validating can be cancelled")
        apply_changes(ctx, changes, now)
        blocked = [ch.task_id for ch in changes if isinstance(ch, TaskTransition) and ch.task_id != task_id
                   and ch.new.value in ("blocked", "cancelled")]
        return True, f"task {task_id} cancelled" + (f"; {len(blocked)} dependent(s) stopped: {', '.join(blocked)}"
                                                     if blocked else "")
    if command == "cancel_dependents":
        task_id = _task_arg(ctx, args)
        changes = s.cancel_dependents(task_id, now)
        apply_changes(ctx, changes, now)
        cancelled = [ch.task_id for ch in changes if isinstance(ch, TaskTransition) and str(ch.new) == "cancelled"]
        return True, f"cancelled {len(cancelled)} dependent(s) of {task_id}" + (f": {', '.join(cancelled)}" if cancelled else "")
    if command == "rollback":
        if args.get("cascade"):
            return await rollback_cascade(ctx, _task_arg(ctx, args), args.get("scope"), now)
        return await rollback(ctx, _task_arg(ctx, args), now)
    if command == "budget":
        return set_budget(ctx, args, now)
    return False, f"unknown command {command!r} (expected one of {', '.join(COMMANDS)})"


def budget_amounts(args: dict[str, Any]) -> dict[str, float]:
    """The budgets a ``budget`` control sets ({"mission_usd": .., "retry_usd": ..}, one or both);
    ValueError naming the field when none is given or one is not a positive number."""
    amounts = {}
    for key in ("mission_usd", "retry_usd"):
        value = args.get(key)
        if value is None:
            continue
        try:
            amount = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"budget {key}: {value!r} is not a number") from None
        if not amount > 0 or amount == float("inf"):
            raise ValueError(f"budget {key}: {value!r} must be a positive number of dollars")
        amounts[key] = amount
    if not amounts:
        raise ValueError("budget: give mission_usd and/or retry_usd")
    return amounts


def set_budget(ctx: RunContext, args: dict[str, Any], now: float) -> tuple[bool, str]:
    """Raise (or lower) the mission and retry budgets. Tasks the old budget refused stay failed
    until the operator retries them: a raise alone does not start new spending."""
    amounts = budget_amounts(args)
    s = ctx.scheduler
    s.set_budget(now, mission_usd=amounts.get("mission_usd"), retry_usd=amounts.get("retry_usd"))
    spend = s.spend()
    text = f"mission budget ${spend.mission_budget_usd:.2f}, retry budget ${spend.retry_budget_usd:.2f}"
    with ctx.transaction():
        writes.set_run_budgets(ctx.run_id, spend.mission_budget_usd, spend.retry_budget_usd)
        ctx.events.add("budget.changed", f"{text} (spent ${spend.total_usd:.2f})",
                       mission_usd=spend.mission_budget_usd, retry_usd=spend.retry_budget_usd)
    return True, text


async def rollback(ctx: RunContext, task_id: str, now: float) -> tuple[bool, str]:
    """Revert one task's commit, refused when a later integrated task touched the same files."""
    if ctx.repo is None:
        return False, "rollback needs git (this run has --no-git)"
    row = queries.integration_commit(ctx.run_id, task_id)
    if row is None or row.reverted_by:
        what = "was already rolled back" if row is not None else "has no integrated commit"
        return _refuse(ctx, task_id, f"task {task_id} {what}")
    files = set(row.files)
    later_rows = queries.live_commits_since(ctx.run_id, row)
    blockers = sorted({(r.task_id, p) for r in later_rows for p in r.files if p in files})
    if blockers:
        names = sorted({t for t, _ in blockers})
        paths = sorted({p for _, p in blockers})
        return _refuse(
            ctx, task_id,
            f"rollback of {task_id} refused: later task(s) {', '.join(names)} touched the same file(s) {', '.join(paths)}",
        )
    later = [(r.task_id, r.sha) for r in later_rows]
    result = await anyio.to_thread.run_sync(ctx.repo.rollback, task_id, row.sha, later)
    crash_point("rollback", task_id)  # the revert is on the branch, the store not yet told
    if not result.ok:
        return _refuse(ctx, task_id, f"rollback of {task_id} refused: {result.reason}")
    with ctx.transaction() as txn:
        writes.mark_commit_reverted(row.id, result.sha)
        ctx.events.add("task.rollback", f"reverted {row.sha[:10]} as {result.sha[:10]}", task_id=task_id, sha=result.sha)
        affected, changes = ctx.scheduler.mark_rolled_back(task_id, now)
        write_changes(ctx, txn, changes, now)
    text = f"task {task_id} rolled back by {result.sha[:10]}"
    if affected:
        text += f"; done tasks built on it: {', '.join(affected)}"
    return True, text


async def rollback_cascade(ctx: RunContext, task_id: str, confirmed: list[str] | None, now: float) -> tuple[bool, str]:
    """Revert ``task_id`` and every integrated task built on it or on its files after it
    (``queries.rollback_scope``), newest first, all or none. ``confirmed``: the scope the
    operator saw and agreed to; if the run moved on since and the scope differs, nothing is
    reverted and the operator is shown the new one."""
    if ctx.repo is None:
        return False, "rollback needs git (this run has --no-git)"
    scope = queries.rollback_scope(ctx.run_id, task_id)
    if not scope:
        row = queries.integration_commit(ctx.run_id, task_id)
        what = "was already rolled back" if row is not None else "has no integrated commit"
        return _refuse(ctx, task_id, f"task {task_id} {what}")
    ids = [c.task_id for c in scope]
    if confirmed is not None and list(confirmed) != ids:
        return _refuse(ctx, task_id, f"cascade rollback of {task_id} refused: its scope is now {', '.join(ids)} "
                                     f"(you confirmed {', '.join(confirmed) or 'nothing'}); confirm it again")
    result = await anyio.to_thread.run_sync(
        ctx.repo.rollback_cascade, [(c.task_id, c.sha) for c in scope],
        lambda reverted: crash_point("rollback_cascade", reverted))
    crash_point("rollback", task_id)  # every revert is on the branch, the store not yet told
    if not result.ok:
        return _refuse(ctx, task_id, f"cascade rollback of {task_id} refused: {result.reason}")
    with ctx.transaction() as txn:
        for commit in reversed(scope):
            revert = result.reverts[commit.task_id]
            writes.mark_commit_reverted(commit.id, revert)
            ctx.events.add("task.rollback", f"reverted {commit.sha[:10]} as {revert[:10]} (cascade from {task_id})",
                           task_id=commit.task_id, sha=revert)
            _, changes = ctx.scheduler.mark_rolled_back(commit.task_id, now)
            write_changes(ctx, txn, changes, now)
        ctx.events.add("task.rollback_cascade", f"rolled back {len(ids)} task(s): {', '.join(reversed(ids))}",
                       task_id=task_id, tasks=ids)
    return True, f"rolled back {len(ids)} task(s) newest first: {', '.join(reversed(ids))}; retry them to land them again"


def _refuse(ctx: RunContext, task_id: str, reason: str) -> tuple[bool, str]:
    with ctx.transaction() as txn:
        writes.stage_task_fields(ctx.store, ctx.run_id, task_id, {"attention_reason": reason, "version": txn.version})
        ctx.events.add("task.rollback_refused", reason, level="warning", task_id=task_id)
    return False, reason
