"""Operator commands from the Control table: pause, resume, retry, cancel_dependents,
rollback, scale, budget, stop. Each returns ``(applied, result text)``; the coordinator marks the
row applied or rejected with that text.

Room: runtime. Decisions stay in the scheduler; rollback's git work runs in a thread.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from hybrid_tui.store import models as m

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator

COMMANDS = ("pause", "resume", "retry", "cancel_dependents", "rollback", "scale", "budget", "stop")


def _task_arg(c: "Coordinator", args: dict[str, Any]) -> str:
    task_id = args.get("task_id") or args.get("task")
    if not task_id or task_id not in c.specs:
        raise LookupError(f"unknown task {task_id!r}")
    return str(task_id)


async def apply_control(c: "Coordinator", command: str, args: dict[str, Any], now: float) -> tuple[bool, str]:
    s = c.scheduler
    if command == "pause":
        reason = args.get("reason") or "paused by operator"
        c._persist(s.pause(reason, now), now)
        return True, reason
    if command == "resume":
        c._persist(s.resume(now), now)
        return True, "dispatching resumed"
    if command == "stop":
        c.request_stop(args.get("reason") or "stopped by operator")
        return True, "stopping"
    if command == "scale":
        size = args.get("size", args.get("n"))
        size = None if size in (None, "auto") else int(size)
        c._persist(s.scale(size, now), now)
        return True, f"pool target {size}" if size is not None else "pool back to autoscaling"
    if command == "retry":
        task_id = _task_arg(c, args)
        changes = s.retry(task_id, now)
        if not changes:
            return False, f"task {task_id} is not failed, blocked, cancelled or rolled back"
        c._persist(changes, now)
        return True, f"task {task_id} queued again"
    if command == "cancel_dependents":
        task_id = _task_arg(c, args)
        changes = s.cancel_dependents(task_id, now)
        c._persist(changes, now)
        cancelled = [ch.task_id for ch in changes if type(ch).__name__ == "TaskTransition" and str(ch.new) == "cancelled"]
        return True, f"cancelled {len(cancelled)} dependent(s) of {task_id}" + (f": {', '.join(cancelled)}" if cancelled else "")
    if command == "rollback":
        return await rollback(c, _task_arg(c, args), now)
    if command == "budget":
        return set_budget(c, args, now)
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


def set_budget(c: "Coordinator", args: dict[str, Any], now: float) -> tuple[bool, str]:
    """Raise (or lower) the mission and retry budgets. Tasks the old budget refused stay failed
    until the operator retries them: a raise alone does not start new spending."""
    amounts = budget_amounts(args)
    s = c.scheduler
    s.set_budget(now, mission_usd=amounts.get("mission_usd"), retry_usd=amounts.get("retry_usd"))
    spend = s.spend()
    text = f"mission budget ${spend.mission_budget_usd:.2f}, retry budget ${spend.retry_budget_usd:.2f}"
    with c.store.write(c.run_id):
        m.Run.update(mission_budget_usd=spend.mission_budget_usd, retry_budget_usd=spend.retry_budget_usd).where(
            m.Run.id == c.run_id
        ).execute()
        c.events.add("budget.changed", f"{text} (spent ${spend.total_usd:.2f})",
                     mission_usd=spend.mission_budget_usd, retry_usd=spend.retry_budget_usd)
    c.events.flush()
    return True, text


async def rollback(c: "Coordinator", task_id: str, now: float) -> tuple[bool, str]:
    """Revert one task's commit, refused when a later integrated task touched the same files."""
    if c.repo is None:
        return False, "rollback needs git (this run has --no-git)"
    row = m.IntegrationCommit.get_or_none((m.IntegrationCommit.run == c.run_id) & (m.IntegrationCommit.task_id == task_id))
    if row is None or row.reverted_by:
        what = "was already rolled back" if row is not None else "has no integrated commit"
        return _refuse(c, task_id, f"task {task_id} {what}")
    files = set(json.loads(row.files_json or "[]"))
    later_rows = list(
        m.IntegrationCommit.select()
        .where(
            (m.IntegrationCommit.run == c.run_id)
            & (m.IntegrationCommit.id != row.id)
            & (m.IntegrationCommit.committed_at >= row.committed_at)
            & (m.IntegrationCommit.reverted_by.is_null())
        )
        .order_by(m.IntegrationCommit.committed_at)
    )
    blockers = sorted(
        {(r.task_id, p) for r in later_rows for p in json.loads(r.files_json or "[]") if p in files}
    )
    if blockers:
        names = sorted({t for t, _ in blockers})
        paths = sorted({p for _, p in blockers})
        return _refuse(
            c, task_id,
            f"rollback of {task_id} refused: later task(s) {', '.join(names)} touched the same file(s) {', '.join(paths)}",
        )
    later = [(r.task_id, r.sha) for r in later_rows]
    result = await anyio.to_thread.run_sync(c.repo.rollback, task_id, row.sha, later)
    from hybrid_tui.runtime.faults import crash_point

    crash_point("rollback", task_id)  # the revert is on the branch, the store not yet told
    if not result.ok:
        return _refuse(c, task_id, f"rollback of {task_id} refused: {result.reason}")
    with c.store.write(c.run_id) as version:
        m.IntegrationCommit.update(reverted_by=result.sha).where(m.IntegrationCommit.id == row.id).execute()
        c.events.add("task.rollback", f"reverted {row.sha[:10]} as {result.sha[:10]}", task_id=task_id, sha=result.sha)
        from hybrid_tui.runtime.persist import persist_changes

        affected, changes = c.scheduler.mark_rolled_back(task_id, now)
        cancels = persist_changes(c, changes, now, version)
    c.events.flush()
    c.act_on_cancels(cancels)
    text = f"task {task_id} rolled back by {result.sha[:10]}"
    if affected:
        text += f"; done tasks built on it: {', '.join(affected)}"
    return True, text


def _refuse(c: "Coordinator", task_id: str, reason: str) -> tuple[bool, str]:
    with c.store.write(c.run_id) as version:
        c.store.staged.update(m.Task, {"attention_reason": reason, "version": version},
                              where={"run": c.run_id, "task_id": task_id})
        c.events.add("task.rollback_refused", reason, level="warning", task_id=task_id)
    c.events.flush()
    return False, reason
