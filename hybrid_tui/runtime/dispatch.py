"""Where attempts start: one dispatch round of the scheduler, stored.

Room: runtime. In the loop's transaction: the scheduler's dispatch changes (through
``task_state``), each new attempt's row, its task's attempt count, its event. The attempts
are launched by the loop only once that committed (``Effects.launches``).
"""

from __future__ import annotations

from typing import Any

from hybrid_tui.core.tiering import select_model
from hybrid_tui.store import writes
from hybrid_tui.runtime.context import Launch, RunContext, RunningAttempt, Transaction
from hybrid_tui.runtime.task_state import apply_changes


def dispatch_round(ctx: RunContext, now: float, limit: int) -> None:
    """One dispatch round in ONE transaction: the scheduler's changes and every attempt row
    it starts; the attempts run only once that committed."""
    dispatches, changes = ctx.scheduler.dispatch(now, limit=limit)
    if not dispatches:
        apply_changes(ctx, changes, now)
        return
    with ctx.transaction() as txn:
        apply_changes(ctx, changes, now)
        leaders: dict[str, Launch] = {}  # [policies.batch]: a batch's leader -> its launch
        for d in dispatches:
            launch = start_attempt(ctx, txn, d, now, leader=leaders.get(d.batch[0]) if d.batch else None)
            if d.batch and d.task_id == d.batch[0]:
                leaders[d.task_id] = launch


def start_attempt(ctx: RunContext, txn: Transaction, d: Any, now: float, leader: Launch | None = None) -> Launch:
    """Store the start of attempt ``d.attempt`` of ``d.task_id`` on ``d.agent_id``; the loop
    launches it after the commit. A member of a batch after its leader is launched with the
    ``leader``'s launch (one implementer session), not on its own."""
    task_id, agent_id, number = d.task_id, d.agent_id, d.attempt
    spec = ctx.specs[task_id]
    feedback = d.feedback or ""
    model = getattr(d, "model", None) or select_model(spec, ctx.config.models)
    log_path = ctx.logs_dir / f"{task_id}.{number}.log"
    worker = ctx.workers.assign(agent_id) if ctx.workers is not None else ""
    fields = {
        "task_id": task_id,
        "number": number,
        "phase": "implementing" if number == 1 else "retry",
        "agent_id": agent_id,
        "backend": ctx.backend_name,
        "model": model,
        "started_at": now,
        "feedback": feedback,
        "log_path": str(log_path),
        "version": txn.version,
        "worker": worker,
    }
    batch = getattr(d, "batch", ())
    if batch:
        # The leader's attempt names the batch: every member's row carries it (one session).
        lead_attempt = leader.attempt.number if leader is not None else number
        fields["batch"] = f"{batch[0]}#{lead_attempt}"
    writes.stage_attempt_start(ctx.store, ctx.run_id, fields)
    writes.stage_task_fields(ctx.store, ctx.run_id, task_id,
                             {"attempts": number, "agent_id": agent_id, "started_at": now, "version": txn.version})
    if worker:
        writes.stage_agent_worker(ctx.store, ctx.run_id, agent_id, ctx.workers.label(worker), now, txn.version)
        ctx.events.add("attempt.started", f"attempt {number} on {agent_id} ({model}) on worker {worker}",
                       task_id=task_id, attempt=number, agent_id=agent_id, worker=worker)
    else:
        ctx.events.add(
            "attempt.started", f"attempt {number} on {agent_id} ({model})", task_id=task_id, attempt=number, agent_id=agent_id
        )
    # dispatch_seq: numbered by the loop as it launches the attempt (launch order).
    attempt = RunningAttempt(task_id, agent_id, number, 0, now, worker=worker)
    launch = Launch(attempt, spec, model, log_path, feedback)
    if leader is not None:
        leader.members.append(launch)
    else:
        txn.effects.launches.append(launch)
    if batch and leader is not None:
        ctx.events.add("attempt.batched", f"in the batch of {batch[0]} ({len(batch)} tasks, one agent session)",
                       task_id=task_id, attempt=number, agent_id=agent_id, batch=list(batch))
    return launch
