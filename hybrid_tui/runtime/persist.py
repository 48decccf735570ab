"""Writing the scheduler's change records and attempt outcomes to the store.

Room: runtime. Called inside a store write transaction (``Coordinator.transaction``) on
the loop thread; the caller acts on side effects (cancelling attempts) only after the
commit. Task, agent, attempt and lock rows are staged (``Store.staged``): the several
updates a task gets in one transaction reach the database as one, at the commit, and the
rest in batches; other rows go through ``Store.update_rows`` (cached SQL each).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import TERMINAL_STATUSES

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator, RunningAttempt

ATTENTION = {"failed", "blocked", "cancelled"}
MAX_MESSAGE_CHARS = 20_000  # validation output kept in the store; the full text is in the log file


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def persist_changes(c: "Coordinator", changes: Any, now: float, version: int) -> list[Any]:
    """Write each change in order; return the CancelRunning records for the caller to act on."""
    cancels = []
    for change in changes or ():
        kind = type(change).__name__
        if kind == "CancelRunning":
            cancels.append(change)
        persist_change(c, kind, change, now, version)
    return cancels


def persist_change(c: "Coordinator", kind: str, ch: Any, now: float, version: int) -> None:
    run = c.run_id
    if kind == "TaskTransition":
        new, old = _status(ch.new), _status(ch.old)
        fields: dict[str, Any] = {"status": new, "updated_at": now, "version": version, "retry_at": ch.retry_at}
        if new in ("pending", "ready", "retry_wait", "running"):
            # The console shows the score the queue was ordered by when the task last moved.
            fields["score"] = c.scheduler.score(ch.task_id)
        if new in ATTENTION or new == "retry_wait":
            fields["attention_reason"] = ch.reason if new in ATTENTION else ""
        elif new in ("ready", "pending", "running", "done"):
            fields["attention_reason"] = ""
        if new == "running":
            fields["started_at"] = now
        if new in ("ready", "pending", "retry_wait"):
            fields["agent_id"] = None
        if new in TERMINAL_STATUSES:
            fields["finished_at"] = now
        c.store.staged.update(m.Task, fields, where={"run": run, "task_id": ch.task_id})
        level = "warning" if new in ATTENTION else "info"
        text = f"{old} -> {new}" + (f": {ch.reason}" if ch.reason else "")
        c.events.add("task.status", text, level=level, task_id=ch.task_id, old=old, new=new)
    elif kind == "LockAcquired":
        c.store.staged.insert(m.FileLock, {"run": run, "path": ch.path, "task_id": ch.task_id,
                                           "acquired_at": ch.acquired_at, "expires_at": ch.expires_at}, or_replace=True)
    elif kind == "LockReleased":
        c.store.staged.delete(m.FileLock, where={"run": run, "path": ch.path, "task_id": ch.task_id})
    elif kind == "AgentChanged":
        state = "retired" if ch.state == "removed" else ch.state
        c.store.staged.update(m.Agent, {"state": state, "task_id": ch.task_id, "updated_at": now, "version": version},
                              where={"run": run, "agent_id": ch.agent_id})
        if ch.state == "removed":
            c.agents.pop(ch.agent_id, None)
            c._draining.discard(ch.agent_id)
    elif kind == "Alert":
        level = {"critical": "error"}.get(ch.level, ch.level)
        if ch.kind == "budget_exhausted" and ch.data.get("tasks"):
            # Refused at dispatch, with no attempt: the task row carries the failure type the
            # console's attention view and the report show, as for any failed attempt.
            for task_id in ch.data["tasks"]:
                c.store.staged.update(m.Task, {"failure_type": "budget_exhausted", "version": version},
                                      where={"run": run, "task_id": task_id})
        c.events.add(f"alert.{ch.kind}", ch.message, level=level, **{"data": ch.data} if ch.data else {})
    elif kind == "CancelRunning":
        c.events.add("attempt.cancel", ch.reason, level="warning", task_id=ch.task_id, attempt=ch.attempt, agent_id=ch.agent_id)
    elif kind == "PoolTarget":
        m.Run.update(pool_target=ch.size).where(m.Run.id == run).execute()
        c.events.add("pool.target", f"pool target {ch.size}" + (f": {ch.reason}" if ch.reason else ""), size=ch.size)
    elif kind == "PauseChanged":
        status = "paused" if ch.paused else "running"
        c.policy_paused = bool(ch.paused) and not c._in_operator_control
        m.Run.update(status=status, pause_reason=ch.reason if ch.paused else "").where(m.Run.id == run).execute()
        c.events.add("run.paused" if ch.paused else "run.resumed", ch.reason, level="warning" if ch.paused else "info")
    elif kind == "BreakerChanged":
        c.events.add("breaker." + ch.state, ch.reason or f"{ch.backend} breaker {ch.state}", level="warning", backend=ch.backend)
    else:  # a change type this runtime does not know yet: keep it visible
        c.events.add("core." + kind, repr(ch))


def record_attempt_end(
    c: "Coordinator",
    attempt: "RunningAttempt",
    *,
    outcome: str,
    failure_type: str | None = None,
    message: str = "",
    result: Any = None,
    retry_after: float | None = None,
    commit: Any = None,
) -> None:
    """Close the attempt's row and feed the outcome to the scheduler, in one transaction."""
    now = c.clock()
    if attempt.cancelled_reason and outcome != "cancelled":
        # The scheduler already cancelled the task (CancelRunning) while this step finished.
        outcome, failure_type = "cancelled", None
    cost = float(getattr(result, "cost_usd", 0.0) or 0.0)
    usage = getattr(result, "usage", None)
    task_id = attempt.task_id
    stored_message = message[-MAX_MESSAGE_CHARS:] if message else ""
    with c.transaction() as txn:
        version = txn.version
        fields: dict[str, Any] = {
            "finished_at": now,
            "duration_seconds": max(0.0, now - attempt.started),
            "outcome": outcome,
            "failure_type": failure_type,
            "failure_message": stored_message,
            "cost_usd": cost,
            "version": version,
        }
        if result is not None:
            fields["summary"] = getattr(result, "summary", "") or ""
            if getattr(result, "model", None):
                fields["model"] = result.model
        if usage is not None:
            fields.update(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
        c.store.staged.update(m.Attempt, fields, where={"run": c.run_id, "task_id": task_id, "number": attempt.number})
        task_fields: dict[str, Any] = {"version": version}
        if outcome == "succeeded":
            sha = getattr(commit, "sha", None)
            if sha:
                files = list(getattr(commit, "files", []) or [])
                m.IntegrationCommit.insert(
                    run=c.run_id, task_id=task_id, sha=sha, files_json=json.dumps(files), committed_at=now
                ).on_conflict_replace().execute()
                task_fields["commit_sha"] = sha
            task_fields["failure_type"] = None
            changes = c.scheduler.succeed(task_id, now, cost)
            c.events.add(
                "attempt.succeeded",
                f"attempt {attempt.number} succeeded" + (f", commit {sha[:10]}" if sha else ""),
                task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id, cost_usd=cost, sha=sha,
            )
        elif outcome == "cancelled":
            sha = getattr(commit, "sha", None)
            if sha:  # integrated just as it was cancelled: keep the record (resume reconciles it)
                m.IntegrationCommit.insert(
                    run=c.run_id, task_id=task_id, sha=sha, files_json=json.dumps(list(commit.files or [])),
                    committed_at=now,
                ).on_conflict_replace().execute()
                c.events.add("integration.after_cancel", f"{task_id} was integrated as {sha[:10]} while being cancelled",
                             level="warning", task_id=task_id, sha=sha)
            changes = c.scheduler.settle_cancelled(task_id, attempt.number, cost, now)
            c.events.add(
                "attempt.cancelled", attempt.cancelled_reason or "cancelled", level="warning",
                task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id,
            )
        else:
            task_fields["failure_type"] = failure_type
            c.feedback[task_id] = stored_message
            # The tail: a failing command ends with its error (the head of a flood is noise).
            changes = c.scheduler.fail(task_id, failure_type, now, cost, stored_message[-2000:], retry_after)
            first_line = (message or "").strip().splitlines()[-1:] or [""]
            c.events.add(
                "attempt.failed",
                f"attempt {attempt.number} failed: {failure_type}: {first_line[0][:300]}",
                level="warning", task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id,
                failure_type=failure_type, cost_usd=cost,
            )
        c.store.staged.update(m.Task, task_fields, where={"run": c.run_id, "task_id": task_id},
                              increments={"cost_usd": cost})
        cancels = persist_changes(c, changes, now, version)
        # After the commit: the attempt stops counting as running, then the cancels it caused.
        txn.after_commit.append(lambda: c.running.pop(task_id, None))
        if cancels:
            txn.after_commit.append(lambda: c.act_on_cancels(cancels))
