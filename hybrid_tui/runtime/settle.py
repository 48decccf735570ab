"""Where an attempt's end is stored: it decides, with the scheduler, what the end means for
the task (succeeded, failed and maybe retried, cancelled), closes the attempt's row, and
records what the attempt did for export-replay.

Room: runtime. Runs in the loop's settle transaction (group commit: every end that arrived
since the loop's last turn in one transaction). The scheduler's change records go to
``task_state``; after the commit the loop stops counting the attempt as running and acts
on the cancels it caused (:class:`~hybrid_tui.runtime.context.Effects`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid_tui.spec.models import IntentOp, Usage
from hybrid_tui.store import writes
from hybrid_tui.workspace.tree import changed_files, worktree_operations
from hybrid_tui.runtime import record
from hybrid_tui.runtime.context import RunContext, RunningAttempt
from hybrid_tui.runtime.task_state import write_changes

MAX_MESSAGE_CHARS = 20_000  # validation output kept in the store; the full text is in the log file


def settle_attempt(
    ctx: RunContext,
    attempt: RunningAttempt,
    *,
    outcome: str,
    failure_type: str | None = None,
    message: str = "",
    result: Any = None,
    retry_after: float | None = None,
    commit: Any = None,
) -> None:
    """Record the attempt's end (the recording, then the store and the scheduler), in the
    open (or a new) transaction."""
    # What the attempt did, for export-replay: before the store update frees the agent's worktree.
    record_attempt(ctx, attempt, outcome=outcome, failure_type=failure_type, message=message, result=result,
                   commit=commit)
    record_attempt_end(ctx, attempt, outcome=outcome, failure_type=failure_type, message=message, result=result,
                       retry_after=retry_after, commit=commit)


def record_attempt_end(
    ctx: RunContext,
    attempt: RunningAttempt,
    *,
    outcome: str,
    failure_type: str | None = None,
    message: str = "",
    result: Any = None,
    retry_after: float | None = None,
    commit: Any = None,
) -> None:
    """Close the attempt's row and feed the outcome to the scheduler, in one transaction."""
    now = ctx.clock()
    if attempt.cancelled_reason and outcome != "cancelled":
        # The scheduler already cancelled the task (CancelRunning) while this step finished.
        outcome, failure_type = "cancelled", None
    cost = float(getattr(result, "cost_usd", 0.0) or 0.0)
    usage = getattr(result, "usage", None)
    task_id = attempt.task_id
    run_id = ctx.run_id
    scheduler = ctx.scheduler
    stored_message = message[-MAX_MESSAGE_CHARS:] if message else ""
    with ctx.transaction() as txn:
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
            if getattr(result, "session_id", ""):
                fields["session_id"] = result.session_id
        if usage is not None:
            fields.update(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
        writes.stage_attempt_end(ctx.store, run_id, task_id, attempt.number, fields)
        task_fields: dict[str, Any] = {"version": version}
        if outcome == "succeeded":
            sha = getattr(commit, "sha", None)
            if sha:
                writes.record_integration_commit(run_id, task_id, sha, list(getattr(commit, "files", []) or []), now)
                task_fields["commit_sha"] = sha
            task_fields["failure_type"] = None
            changes = scheduler.succeed(task_id, now, cost)
            ctx.events.add(
                "attempt.succeeded",
                f"attempt {attempt.number} succeeded" + (f", commit {sha[:10]}" if sha else ""),
                task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id, cost_usd=cost, sha=sha,
            )
        elif outcome == "cancelled":
            sha = getattr(commit, "sha", None)
            if sha:  # integrated just as it was cancelled: keep the record (resume reconciles it)
                writes.record_integration_commit(run_id, task_id, sha, list(commit.files or []), now)
                ctx.events.add("integration.after_cancel", f"{task_id} was integrated as {sha[:10]} while being cancelled",
                               level="warning", task_id=task_id, sha=sha)
            changes = scheduler.settle_cancelled(task_id, attempt.number, cost, now)
            ctx.events.add(
                "attempt.cancelled", attempt.cancelled_reason or "cancelled", level="warning",
                task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id,
            )
        else:
            task_fields["failure_type"] = failure_type
            ctx.feedback[task_id] = stored_message
            # The tail: a failing command ends with its error (the head of a flood is noise).
            # Only the backend's failures feed its circuit breaker: when the agent returned a
            # result, what failed after it (validation, its time limit) was the task's own.
            changes = scheduler.fail(task_id, failure_type, now, cost, stored_message[-2000:], retry_after,
                                     backend_fault=not getattr(result, "ok", False))
            first_line = (message or "").strip().splitlines()[-1:] or [""]
            ctx.events.add(
                "attempt.interrupted" if outcome == "interrupted" else "attempt.failed",
                f"attempt {attempt.number} failed: {failure_type}: {first_line[0][:300]}",
                level="warning", task_id=task_id, attempt=attempt.number, agent_id=attempt.agent_id,
                failure_type=failure_type, cost_usd=cost,
            )
        writes.stage_task_fields(ctx.store, run_id, task_id, task_fields, increments={"cost_usd": cost})
        write_changes(ctx, txn, changes or (), now)
        # After the commit: the attempt stops counting as running, then the cancels it caused.
        txn.effects.ended.append(task_id)


# ---------------------------------------------------------------------------- the recording


def record_attempt(
    ctx: RunContext,
    attempt: RunningAttempt,
    *,
    outcome: str,
    failure_type: str | None,
    message: str,
    result: Any,
    commit: Any = None,
) -> bool:
    """Record one finished attempt (succeeded or failed; cancelled ones did not happen) in
    the run's ``record/attempts.jsonl``. True when it was recorded.

    Never raises: a recording problem is logged as an event, the run goes on."""
    if outcome not in ("succeeded", "failed") or attempt.cancelled_reason:
        return False
    try:
        recording = _recording_json(ctx, attempt, outcome, failure_type, message, result)
        _append(ctx, attempt, recording, outcome, failure_type, message, result, commit)
        return True
    except Exception as exc:  # the recording is a by-product: it must never fail the run
        try:
            with ctx.transaction():  # joins the attempt's end when that is one transaction
                ctx.events.add("record.failed", f"could not record attempt {attempt.number}: {exc}", level="warning",
                               task_id=attempt.task_id, attempt=attempt.number)
        except Exception:
            pass
        return False


def _recording_json(
    ctx: RunContext, attempt: RunningAttempt, outcome: str, failure_type: str | None, message: str, result: Any
) -> str:
    """The attempt's :class:`RecordedAttempt` as JSON (``model_dump_json(exclude_none=True)``)."""
    agent_side = result is None or not getattr(result, "ok", False)
    replay_failure = outcome == "failed" and (agent_side or failure_type not in record.REPLAYED_FOR_REAL)
    operations = _operations(ctx, attempt, result, agent_side)
    usage = getattr(result, "usage", None) or Usage()
    cost = float(getattr(result, "cost_usd", 0.0) or 0.0)
    saved = getattr(result, "context_saved", None)
    if saved is not None:  # a batch member: recorded as its own attempt would have spent
        usage = usage.model_copy(update={"input_tokens": usage.input_tokens + saved.input_tokens})
        cost += float(getattr(result, "context_saved_usd", 0.0) or 0.0)
    duration = float(getattr(result, "duration_seconds", 0.0) or 0.0)
    if duration <= 0:
        duration = max(0.0, ctx.clock() - attempt.started)
    summary = getattr(result, "summary", "") or ""
    if replay_failure:
        # Replayed as this failure without touching files: keep the message the run showed.
        summary = (message or getattr(result, "message", "") or summary)[-record.OUTPUT_TAIL_CHARS:]
    return record.recording_json(
        operations,
        getattr(result, "model", None) or None,
        usage,
        cost,
        duration,
        summary,
        (failure_type or "agent_error") if replay_failure else None,
        bool(getattr(result, "batch_share", False)),
    )


def _operations(ctx: RunContext, attempt: RunningAttempt, result: Any, agent_side: bool) -> list[Any]:
    known = getattr(result, "recorded_operations", None)
    if known is not None:  # read by the runtime already (a batch member's own files)
        return [op for op in known if not isinstance(op, IntentOp)]
    backend = getattr(ctx.implementer, "name", ctx.backend_name)
    spec = ctx.specs.get(attempt.task_id)
    if backend in record.KNOWN_OPS_BACKENDS:
        if backend == "sim" and agent_side:
            return []  # a synthetic failure touches nothing
        recorded = (record.recorded_attempt(ctx.mission, ctx.run_id, attempt.task_id, attempt.number)
                    if backend == "replay" else None)
        operations = recorded.file_operations if recorded is not None else (spec.file_operations if spec else [])
        return [op for op in operations if not isinstance(op, IntentOp)]
    worktree = ctx.agents.get(attempt.agent_id, "")
    if ctx.repo is None or not worktree:
        return []
    # Only the agent's files: never what the slot's setup or a validation command wrote.
    setup_paths = getattr(ctx.repo, "setup_paths", None)
    kept = setup_paths(attempt.agent_id) if setup_paths is not None else []
    touched = list(getattr(result, "files_touched", None) or [])
    if not touched and not kept:
        return worktree_operations(Path(worktree))
    if not touched:  # nothing reported: every change but setup's output
        touched = changed_files(Path(worktree))
    paths = [p for p in touched if not any(p == k or p.startswith(k + "/") for k in kept)]
    return worktree_operations(Path(worktree), paths=paths)


def _append(
    ctx: RunContext, attempt: RunningAttempt, recording: str, outcome: str, failure_type: str | None,
    message: str, result: Any, commit: Any,
) -> None:
    if outcome == "succeeded":
        validation = "passed"
    elif failure_type == "validation_failed" and result is not None and getattr(result, "ok", False):
        validation = "failed"
    else:
        validation = "not_run" if result is None or not getattr(result, "ok", False) else "passed"
    ctx.recorder.record({  # made with the coordinator, closed when its run() ends
        "task_id": attempt.task_id,
        "number": attempt.number,
        "agent_id": attempt.agent_id,
        "outcome": outcome,
        "failure_type": failure_type,
        "validation": validation,
        "output": (message or "")[-record.OUTPUT_TAIL_CHARS:],
        "commit": getattr(commit, "sha", None),
    }, recording)
