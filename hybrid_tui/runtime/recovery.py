"""Crash recovery: bring a run's store back in line with reality before carrying on.

Room: runtime. Runs at every coordinator start (a no-op on a fresh run):

1. attempts still ``running`` become ``interrupted`` (failure type ``interrupted``), their
   tasks go back to ``ready``, every file lock is released (no attempt runs now), agents idle;
2. each agent's worktree is reset to the mission branch head (a stale ``index.lock`` left
   by a killed git is removed first);
3. the store is reconciled with the mission branch: a task whose ``Hybrid-Task`` trailer is
   on the branch is ``done`` (its IntegrationCommit row written if the crash came between
   the commit and the store update), so it is never integrated twice; likewise a task whose
   ``Hybrid-Rollback`` revert is on the branch is ``rolled_back`` and its pending rollback
   control applied, so it is never reverted twice.

The scheduler is then rebuilt from the stored statuses (see ``schedule.build_scheduler``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import IN_FLIGHT_STATUSES

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.runtime.coordinator import Coordinator



def interrupt_running(c: "Coordinator", reason: str) -> list[str]:
    """Mark running attempts interrupted and their tasks ready; release locks. Returns task ids."""
    now = c.clock()
    with c.store.write(c.run_id) as version:
        running = list(m.Attempt.select().where((m.Attempt.run == c.run_id) & (m.Attempt.outcome == "running")))
        for att in running:
            att.outcome = "interrupted"
            att.failure_type = "interrupted"
            att.failure_message = reason
            att.finished_at = now
            att.duration_seconds = max(0.0, now - att.started_at)
            att.version = version
            att.save()
            c.events.add("attempt.interrupted", reason, level="warning", task_id=att.task_id, attempt=att.number, agent_id=att.agent_id or None)
        tasks = list(m.Task.select().where((m.Task.run == c.run_id) & (m.Task.status.in_(IN_FLIGHT_STATUSES))))
        for task in tasks:
            c.events.add("task.status", f"{task.status} -> ready: {reason}", level="warning", task_id=task.task_id, old=task.status, new="ready")
            task.status, task.agent_id, task.retry_at, task.version, task.updated_at = "ready", None, None, version, now
            task.save()
        m.FileLock.delete().where(m.FileLock.run == c.run_id).execute()
        m.Agent.update(state="idle", task_id=None, version=version, updated_at=now).where(
            (m.Agent.run == c.run_id) & (m.Agent.state != "retired")
        ).execute()
    c.events.flush()
    return [t.task_id for t in tasks]


def remove_stale_index_lock(worktree: Path) -> bool:
    """Delete the worktree's ``index.lock`` (only a killed git leaves one; none runs now)."""
    dot_git = worktree / ".git"
    if dot_git.is_file():  # a linked worktree: ".git" holds "gitdir: <path>"
        text = dot_git.read_text(errors="replace").strip()
        git_dir = Path(text.split(":", 1)[1].strip()) if text.startswith("gitdir:") else None
    else:
        git_dir = dot_git if dot_git.is_dir() else None
    if git_dir is None:
        return False
    if not git_dir.is_absolute():
        git_dir = (worktree / git_dir).resolve()
    lock = git_dir / "index.lock"
    if lock.exists():
        lock.unlink()
        return True
    return False


async def recover(c: "Coordinator") -> dict[str, Any]:
    from hybrid_tui.workspace.validation import kill_orphaned_checks

    # Validation commands run in sessions of their own, so a SIGKILLed coordinator leaves
    # them running: kill them before their worktrees are reset under them.
    orphans = kill_orphaned_checks(c.logs_dir)
    interrupted = interrupt_running(c, reason="interrupted: coordinator restarted")
    report: dict[str, Any] = {"interrupted": interrupted, "reconciled": [], "orphans_killed": orphans}
    if c.repo is None:
        return report
    repo = c.repo
    # The mission repository's own index.lock too (a kill during an integration commit).
    run = m.Run.get_by_id(c.run_id)
    remove_stale_index_lock(Path(run.repo_path))
    for agent in m.Agent.select().where(m.Agent.run == c.run_id):
        if agent.worktree and Path(agent.worktree).exists():
            remove_stale_index_lock(Path(agent.worktree))
            await anyio.to_thread.run_sync(repo.reset, agent.agent_id)
    await anyio.to_thread.run_sync(repo.prepare, run.base_branch or None)  # keeps the existing branch
    integrated = await anyio.to_thread.run_sync(repo.find_integrated)
    report["reconciled"] = reconcile(c, integrated)
    reverted = await anyio.to_thread.run_sync(repo.find_rolled_back)
    report["rolled_back"] = reconcile_rollbacks(c, reverted)
    return report


def _sha_and_files(value: Any) -> tuple[str, list[str] | None]:
    if isinstance(value, str):
        return value, None
    sha = getattr(value, "sha", None) or (value.get("sha") if isinstance(value, dict) else None)
    files = getattr(value, "files", None) if not isinstance(value, dict) else value.get("files")
    return str(sha), (list(files) if files is not None else None)


def reconcile(c: "Coordinator", integrated: Any) -> list[str]:
    """Tasks with a trailer on the mission branch are done; returns the ids this changed."""
    if not integrated:
        return []
    now = c.clock()
    changed: list[str] = []
    items = integrated.items() if isinstance(integrated, dict) else integrated
    with c.store.write(c.run_id) as version:
        for task_id, value in items:
            sha, files = _sha_and_files(value)
            task = m.Task.get_or_none((m.Task.run == c.run_id) & (m.Task.task_id == task_id))
            if task is None:
                continue
            row = m.IntegrationCommit.get_or_none((m.IntegrationCommit.run == c.run_id) & (m.IntegrationCommit.task_id == task_id))
            if row is None:
                if files is None and c.repo is not None:
                    files = c.repo.changed_files(sha)
                m.IntegrationCommit.create(
                    run=c.run_id, task_id=task_id, sha=sha, files_json=json.dumps(files or []), committed_at=now
                )
            if row is not None and row.reverted_by:
                continue  # rolled back: its trailer stays on the branch, under the revert
            if task.status not in ("done", "rolled_back"):
                c.events.add(
                    "task.status", f"{task.status} -> done: found on the mission branch ({sha[:10]})",
                    task_id=task_id, old=task.status, new="done",
                )
                task.status, task.commit_sha, task.finished_at = "done", sha, now
                task.attention_reason, task.failure_type, task.version = "", None, version
                task.save()
                changed.append(task_id)
    c.events.flush()
    return changed


def reconcile_rollbacks(c: "Coordinator", reverted: dict[str, str]) -> list[str]:
    """Reverts on the mission branch the store does not know (a crash between the revert
    and the store update): record them, mark the tasks rolled back and settle the operator's
    rollback control, as the uninterrupted run would have. Returns the ids this changed."""
    now = c.clock()
    changed: list[str] = []
    with c.store.write(c.run_id) as version:
        for task_id, revert_sha in reverted.items():
            row = m.IntegrationCommit.get_or_none(
                (m.IntegrationCommit.run == c.run_id) & (m.IntegrationCommit.task_id == task_id)
            )
            if row is None or row.reverted_by:
                continue
            m.IntegrationCommit.update(reverted_by=revert_sha).where(m.IntegrationCommit.id == row.id).execute()
            m.Task.update(status="rolled_back", finished_at=now, updated_at=now, version=version).where(
                (m.Task.run == c.run_id) & (m.Task.task_id == task_id) & (m.Task.status == "done")
            ).execute()
            text = f"task {task_id} rolled back by {revert_sha[:10]} (found on the mission branch)"
            for control in m.Control.select().where(
                (m.Control.run == c.run_id) & (m.Control.command == "rollback") & (m.Control.status == "pending")
            ):
                if json.loads(control.args_json or "{}").get("task_id") == task_id:
                    m.Control.update(status="applied", result=text, applied_at=now).where(
                        m.Control.id == control.id
                    ).execute()
            c.events.add("task.rollback", text, task_id=task_id, sha=revert_sha)
            c.events.add("task.status", f"done -> rolled_back: {text}", task_id=task_id, old="done", new="rolled_back")
            changed.append(task_id)
    c.events.flush()
    return changed
