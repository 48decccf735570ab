"""Crash recovery: bring a run's store back in line with reality before carrying on, and
leave a run that stopped on an error paused.

Room: runtime. :func:`recover` runs at every coordinator start (a no-op on a fresh run):

1. attempts still ``running`` become ``interrupted`` (failure type ``interrupted``), their
   tasks go back to ``ready``, every file lock is released (no attempt runs now), agents idle;
2. each agent's worktree is reset to the mission branch head (a stale ``index.lock`` left
   by a killed git is removed first);
3. the store is reconciled with the mission branch: a task whose ``Hybrid-Task`` trailer is
   on the branch is ``done`` (its IntegrationCommit row written if the crash came between
   the commit and the store update), so it is never integrated twice; likewise a task whose
   ``Hybrid-Rollback`` revert is on the branch is ``rolled_back`` and its pending rollback
   control applied, so it is never reverted twice.

The scheduler is then rebuilt from the stored statuses (see ``startup.build_scheduler``).
Task statuses change through ``task_state``; git runs in ``workspace``.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.store import engine_reads, queries, writes
from hybrid_tui.workspace.tree import remove_stale_index_lock
from hybrid_tui.workspace.validation import kill_orphaned_checks
from hybrid_tui.runtime import task_state
from hybrid_tui.runtime.context import RunContext
from hybrid_tui.vocabulary import EXIT_STOPPED


def interrupt_running(ctx: RunContext, reason: str) -> list[str]:
    """Mark running attempts interrupted and their tasks ready; release locks. Returns task ids."""
    now = ctx.clock()
    # What the API already billed the attempts being interrupted (reported per turn).
    spend = {(a.task_id, a.number): (a.usage, a.cost_usd) for a in ctx.running.values() if a.usage is not None}
    with ctx.transaction() as txn:
        for task_id, number, agent_id in writes.interrupt_running_attempts(ctx.run_id, reason, now, txn.version,
                                                                           spend):
            ctx.events.add("attempt.interrupted", reason, level="warning", task_id=task_id, attempt=number,
                           agent_id=agent_id or None)
        requeued = task_state.requeue_in_flight(ctx, txn, reason, now)
        writes.release_all_locks(ctx.run_id)
        writes.idle_live_agents(ctx.run_id, now, txn.version)
    return requeued


async def recover(ctx: RunContext) -> dict[str, Any]:
    # Validation and [workspace] setup commands run in sessions of their own, so a SIGKILLed
    # coordinator leaves them running: kill them before their worktrees are reset under them.
    orphans = kill_orphaned_checks(ctx.logs_dir)
    if ctx.repo is not None:
        orphans += kill_orphaned_checks(ctx.repo.worktrees_dir)
    interrupted = interrupt_running(ctx, reason="interrupted: coordinator restarted")
    report: dict[str, Any] = {"interrupted": interrupted, "reconciled": [], "orphans_killed": orphans}
    if ctx.repo is None:
        return report
    repo = ctx.repo
    # The mission repository's own index.lock too (a kill during an integration commit).
    run = ctx.store.get_run(ctx.run_id)
    remove_stale_index_lock(Path(run.repo_path))
    for agent_id, worktree in engine_reads.agent_worktrees(ctx.run_id):
        if worktree and Path(worktree).exists():
            remove_stale_index_lock(Path(worktree))
            # No setup here: a slot's setup runs in its next attempt, where a failure is that
            # task's environment_error (here it ended `resume` with a traceback), and idle
            # slots are not set up one after another before anything is dispatched.
            await anyio.to_thread.run_sync(partial(repo.reset, agent_id, setup=False))
    await anyio.to_thread.run_sync(repo.prepare, run.base_branch or None)  # keeps the existing branch
    integrated = await anyio.to_thread.run_sync(repo.find_integrated)
    report["reconciled"] = reconcile(ctx, integrated)
    reverted = await anyio.to_thread.run_sync(repo.find_rolled_back)
    report["rolled_back"] = reconcile_rollbacks(ctx, reverted)
    return report


def _sha_and_files(value: Any) -> tuple[str, list[str] | None]:
    if isinstance(value, str):
        return value, None
    sha = getattr(value, "sha", None) or (value.get("sha") if isinstance(value, dict) else None)
    files = getattr(value, "files", None) if not isinstance(value, dict) else value.get("files")
    return str(sha), (list(files) if files is not None else None)


def reconcile(ctx: RunContext, integrated: Any) -> list[str]:
    """Tasks with a trailer on the mission branch are done; returns the ids this changed."""
    if not integrated:
        return []
    now = ctx.clock()
    changed: list[str] = []
    items = integrated.items() if isinstance(integrated, dict) else integrated
    with ctx.transaction() as txn:
        for task_id, value in items:
            sha, files = _sha_and_files(value)
            status = engine_reads.task_status(ctx.run_id, task_id)
            if status is None:
                continue
            row = queries.integration_commit(ctx.run_id, task_id)
            if row is None:
                if files is None and ctx.repo is not None:
                    files = ctx.repo.changed_files(sha)
                writes.record_integration_commit(ctx.run_id, task_id, sha, files or [], now)
            if row is not None and row.reverted_by:
                continue  # rolled back: its trailer stays on the branch, under the revert
            if status not in ("done", "rolled_back"):
                task_state.mark_done_from_branch(ctx, txn, task_id, status, sha, now)
                changed.append(task_id)
    return changed


def reconcile_rollbacks(ctx: RunContext, reverted: dict[str, str]) -> list[str]:
    """Reverts on the mission branch the store does not know (a crash between the revert
    and the store update): record them, mark the tasks rolled back and settle the operator's
    rollback control, as the uninterrupted run would have. Returns the ids this changed."""
    now = ctx.clock()
    changed: list[str] = []
    with ctx.transaction() as txn:
        for task_id, revert_sha in reverted.items():
            row = queries.integration_commit(ctx.run_id, task_id)
            if row is None or row.reverted_by:
                continue
            writes.mark_commit_reverted(row.id, revert_sha)
            text = f"task {task_id} rolled back by {revert_sha[:10]} (found on the mission branch)"
            for control_id, args in engine_reads.pending_rollback_controls(ctx.run_id):
                if args.get("task_id") == task_id:
                    writes.settle_control(control_id, "applied", text, now)
            ctx.events.add("task.rollback", text, task_id=task_id, sha=revert_sha)
            task_state.mark_rolled_back_from_branch(ctx, txn, task_id, text, now)
            changed.append(task_id)
    return changed


def pause_stopped_run(ctx: RunContext, text: str, *, event_kind: str, cause: str) -> int:
    """After the coordinator stopped on an error: interrupt what ran, mark the run paused with
    ``text`` (also one line on stderr); exit code 3.

    Best effort: if the store cannot take even that write, it stays as its last committed
    transaction left it (``resume`` recovers from there the same way)."""
    ctx.events.discard()
    try:
        interrupt_running(ctx, reason=f"interrupted: {text}")
    except Exception:
        ctx.events.discard()
    try:
        with ctx.transaction():
            writes.set_run_status(ctx.run_id, "paused", text)
            ctx.events.add(event_kind, text, level="error", cause=cause)
            ctx.events.add("run.paused", text, level="warning")
    except OSError:
        ctx.events.discard()  # the store has them; events.jsonl catches up on the next start
    except Exception:
        ctx.events.discard()
    print(f"hybrid-tui: run {ctx.run_id} paused: {text}", file=sys.stderr)
    return EXIT_STOPPED


def pause_for_disk_full(ctx: RunContext, reason: str) -> int:
    """After the coordinator stopped on a full disk: interrupt what ran, mark the run paused."""
    return pause_stopped_run(ctx, f"{reason} - free some space, then `hybrid-tui resume {ctx.run_id}`",
                             event_kind="pause.resource", cause="disk_full")
