"""A batched attempt's life (``[policies.batch]``): ONE implementer session for several small
tasks, then each task on its own: its share of the cost, its own validation, its own commit.

Room: runtime, beside ``attempt.py`` (one task's attempt), which it mirrors step by step. The
core chose the batch (``core.batching``) and dispatched every member on one agent; each member
has its own attempt row (``attempt.batch`` names the batch), its own ``RunningAttempt`` (cancel
scope, time limit) and its own end, stored by the loop like any attempt's.

1. Reset the agent's worktree once; one :class:`~hybrid_tui.agents.base.ImplementRequest`
   carries every member (``batch``): the agent loads the shared context once. The sandbox
   admits the members' declared files only (an undeclared file cannot be given to one task).
2. Split the result: a backend that knows each task's outcome and spend (replay) reports
   ``per_task``; otherwise each member gets the session's outcome and its share of the cost
   and tokens, by expected cost (``core.batching.cost_shares``).
3. Stage each member's own files into its own tree (members' files are disjoint by
   construction; a file no member declared goes with the leader), before anything else runs.
4. Member by member: show only its tree in the worktree (base + its change), run its
   validation, queue its integration with its tree: the one exactly-once integration path
   (trailer looked up first), so a crash and ``resume`` never land a task twice. A member that
   fails goes to its own retry path and runs alone (the core never batches a retry).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import anyio

from hybrid_tui.agents.base import BatchMember, ImplementRequest, ImplementResult
from hybrid_tui.core.batching import cost_shares
from hybrid_tui.runtime.attempt import held_files_message, implement, users_folders
from hybrid_tui.runtime.context import AttemptLoop, Launch, RunContext
from hybrid_tui.runtime.faults import crash_point
from hybrid_tui.runtime.record import KNOWN_OPS_BACKENDS, recorded_attempt
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import writes
from hybrid_tui.workspace.sandbox import Sandbox
from hybrid_tui.workspace.setup import SetupFailed
from hybrid_tui.workspace.tree import worktree_operations
from hybrid_tui.workspace.validation import run_checks


def _no_claim(path: str) -> bool:
    """A batch's sandbox refuses undeclared files: they could not be split by task."""
    return False


def split_usage(usage: Usage, shares: list[float]) -> list[Usage]:
    """``usage`` divided by ``shares`` in whole tokens (the last member takes the remainder)."""
    out: list[Usage] = []
    left = usage.model_dump()
    for k, share in enumerate(shares):
        if k == len(shares) - 1:
            out.append(Usage(**left))
            break
        part = {name: round(total * share) for name, total in usage.model_dump().items()}
        part = {name: min(value, left[name]) for name, value in part.items()}
        left = {name: left[name] - part[name] for name in left}
        out.append(Usage(**part))
    return out


def split_result(result: ImplementResult, task_ids: list[str], shares: list[float],
                 files_of: dict[str, list[str]]) -> dict[str, ImplementResult]:
    """Each member's result: the backend's own per-task result, else the session's outcome
    with the member's share of its usage and cost and the member's files."""
    if result.per_task and set(result.per_task) == set(task_ids):
        for tid in task_ids:
            own = result.per_task[tid]
            own.files_touched = files_of.get(tid, [])
        return dict(result.per_task)
    usages = split_usage(result.usage, shares)
    return {
        tid: ImplementResult(
            ok=result.ok, model=result.model, usage=usages[k], cost_usd=result.cost_usd * shares[k],
            failure_type=result.failure_type, message=result.message, summary=result.summary,
            retry_after=result.retry_after, files_touched=files_of.get(tid, []),
            duration_seconds=result.duration_seconds, session_id=result.session_id, batch_share=True,
        )
        for k, tid in enumerate(task_ids)
    }


def files_by_task(touched: list[str], declared: dict[str, list[str]], leader: str) -> dict[str, list[str]]:
    """Each touched file to the member that declared it (members never share one); a file no
    member declared (an agent CLI writes where it likes) goes with the leader."""
    owner = {path: tid for tid, files in declared.items() for path in files}
    out: dict[str, list[str]] = {tid: [] for tid in declared}
    for path in touched:
        out[owner.get(path, leader)].append(path)
    return out


async def run_batch(ctx: RunContext, loop: AttemptLoop, launch: Launch) -> None:
    members = [launch, *launch.members]
    attempts = [m.attempt for m in members]
    task_ids = [a.task_id for a in attempts]
    leader = launch.attempt
    agent_id = leader.agent_id
    for task_id in task_ids:
        crash_point("dispatch", task_id)
    expected = [ctx.scheduler.task(tid).info.expected_cost_usd for tid in task_ids]
    shares = cost_shares(expected)
    declared = {m.attempt.task_id: list(m.spec.declared_files) for m in members}
    for m in members[1:]:
        _log(m.log_path, f"== in the batch of {leader.task_id} ({len(members)} tasks, one agent session): "
                         f"the session's log is {launch.log_path.name}")
    spent: list[ImplementResult | None] = [None]

    def report_spend(usage: Usage, cost_usd: float, used_model: str | None = None) -> None:
        # Billed as the session goes: each member's row holds its share (a crash keeps it).
        spent[0] = ImplementResult(ok=False, model=used_model or launch.model, usage=usage, cost_usd=cost_usd)
        with ctx.transaction():
            for attempt, part, share in zip(attempts, split_usage(usage, shares), shares):
                attempt.cost_usd, attempt.usage = cost_usd * share, part
                writes.record_attempt_spend(ctx.store, ctx.run_id, attempt.task_id, attempt.number, part,
                                            cost_usd * share)

    result: ImplementResult | None = None
    worktree = ctx.agents.get(agent_id, "")
    environment: dict[str, str] = {}
    sandbox: Sandbox | None = None
    scope = leader.scope  # the session runs in the leader's scope (its cancel, its time limit)
    with scope:
        if ctx.repo is not None:
            try:
                await anyio.to_thread.run_sync(ctx.repo.reset, agent_id)
            except SetupFailed as exc:
                for attempt in attempts:
                    loop.finish_attempt(attempt, outcome="failed", failure_type="environment_error", message=exc.reason)
                return
            environment = ctx.repo.environment(agent_id)
            sandbox = Sandbox(Path(worktree), declared=[p for files in declared.values() for p in files],
                              claim=_no_claim)
        limits = [loop.limits(tid) for tid in task_ids]
        first = limits[0]
        batch_policy = ctx.config.policies.batch
        request = ImplementRequest(
            run_id=ctx.run_id,
            task=launch.spec,
            attempt=leader.number,
            agent_id=agent_id,
            model=launch.model,
            sandbox=sandbox,  # type: ignore[arg-type]  # None in git-off mode
            log_path=launch.log_path,
            cost_of=ctx.pricing.cost,
            limits=type(first)(
                max_turns=first.max_turns * len(members),
                max_tokens=sum(lim.max_tokens for lim in limits),
                # Each task's own cap, and no more of the mission budget than the leader may
                # take plus what the others reserved (their expected costs).
                max_cost_usd=min(sum(lim.max_cost_usd for lim in limits), first.max_cost_usd + sum(expected[1:])),
                timeout_seconds=first.timeout_seconds,
            ),
            recorded=recorded_attempt(ctx.mission, ctx.run_id, leader.task_id, leader.number),
            memory_cap_mb=ctx.config.policies.task_memory_cap_mb,
            protected_roots=users_folders(ctx),
            unwatched_roots=(ctx.repo.run_dir,) if ctx.repo is not None else (),
            report_spend=report_spend,
            environment=environment,
            batch=tuple(BatchMember(m.spec, recorded_attempt(ctx.mission, ctx.run_id, m.attempt.task_id,
                                                             m.attempt.number)) for m in members),
            shared_context_tokens=batch_policy.shared_context_tokens if batch_policy is not None else 0,
        )
        result = await implement(ctx, request, launch.model)
        crash_point("implemented", leader.task_id)
    if result is None:  # the session was stopped: by the leader's cancel or the time limit
        timed_out = scope.cancelled_caught and not leader.cancelled_reason
        billed = spent[0] or ImplementResult(ok=False, model=launch.model)
        parts = split_result(billed, task_ids, shares, {})
        for attempt in attempts:
            own = parts[attempt.task_id]
            if attempt.cancelled_reason:
                loop.finish_attempt(attempt, outcome="cancelled", result=own)
            elif timed_out:
                loop.finish_attempt(attempt, outcome="failed", failure_type="timeout", result=own,
                                    message=f"attempt exceeded agents.attempt_timeout_seconds="
                                            f"{ctx.config.agents.attempt_timeout_seconds:g}")
            else:  # the leader was cancelled: the others' session stopped with it, no fault of theirs
                loop.finish_attempt(attempt, outcome="interrupted", failure_type="interrupted", result=own,
                                    message=f"the batch's session stopped when {leader.task_id} was cancelled")
        return

    touched = sorted(set(result.files_touched) | (sandbox.touched if sandbox is not None else set()))
    files_of = files_by_task(touched, declared, leader.task_id)
    parts = split_result(result, task_ids, shares, files_of)
    # An agent CLI writes past the sandbox: a file no member declared goes with the leader and
    # needs its lock, as in a single attempt (else it lands and the task declaring it fails
    # with git_conflict). Held by another task: the leader's file_locked, the others go on.
    declared_paths = {path for files in declared.values() for path in files}
    refused = [path for path in files_of[leader.task_id]
               if path not in declared_paths and not loop.claim_file(leader.task_id, path)]
    if refused and parts[leader.task_id].ok:
        parts[leader.task_id] = dataclasses.replace(parts[leader.task_id], ok=False, failure_type="file_locked",
                                                    message=held_files_message(refused))
    if ctx.repo is not None:
        # Each member's share stored before the members' validation runs (as attempt.py does):
        # a coordinator killed meanwhile left the interrupted rows at $0.
        billed = [(a, parts[a.task_id]) for a in attempts if parts[a.task_id].usage is not None and parts[a.task_id].cost_usd]
        if billed:
            with ctx.transaction():
                for attempt, own in billed:
                    attempt.cost_usd, attempt.usage = own.cost_usd, own.usage
                    writes.record_attempt_spend(ctx.store, ctx.run_id, attempt.task_id, attempt.number, own.usage,
                                                own.cost_usd)
    trees: dict[str, str] = {}
    known_ops = getattr(ctx.implementer, "name", ctx.backend_name) in KNOWN_OPS_BACKENDS
    for attempt in attempts:
        own = parts[attempt.task_id]
        if not own.ok or ctx.repo is None:
            continue
        if not known_ops:
            # What the recording keeps of this task: read now, while the worktree holds the
            # session's whole change (each member is shown alone below).
            own.recorded_operations = await anyio.to_thread.run_sync(
                functools.partial(worktree_operations, Path(worktree), paths=files_of[attempt.task_id]))
        trees[attempt.task_id] = await anyio.to_thread.run_sync(ctx.repo.stage_tree, agent_id,
                                                                files_of[attempt.task_id])
    for member in members:
        await _finish_member(ctx, loop, member, parts[member.attempt.task_id], trees.get(member.attempt.task_id),
                             environment)


async def _finish_member(ctx: RunContext, loop: AttemptLoop, member: Launch, result: ImplementResult,
                         tree: str | None, environment: dict[str, str]) -> None:
    """One member after the session: its own validation and integration (as ``attempt.py``)."""
    attempt, spec = member.attempt, member.spec
    task_id, agent_id = attempt.task_id, attempt.agent_id
    if attempt.cancelled_reason:
        loop.finish_attempt(attempt, outcome="cancelled", result=result)
        return
    if not result.ok:
        loop.finish_attempt(attempt, outcome="interrupted" if result.failure_type == "interrupted" else "failed",
                            failure_type=result.failure_type or "agent_error", message=result.message,
                            result=result, retry_after=result.retry_after)
        return
    if ctx.repo is None:
        loop.finish_unchecked(attempt, result)
        return
    scope = attempt.scope
    integrate = False
    with scope:
        await anyio.to_thread.run_sync(ctx.repo.show_tree, agent_id, tree)
        if not spec.validation.commands:
            crash_point("validation", task_id)
            integrate = loop.advance(task_id, "validating", "integrating")
        elif loop.advance(task_id, "validating"):
            crash_point("validation", task_id)
            worktree = ctx.agents.get(agent_id, "")
            checks = await run_checks(spec.validation, Path(worktree), log_path=member.log_path,
                                      memory_cap_mb=ctx.config.policies.task_memory_cap_mb, env=environment)
            if not checks.ok:
                loop.finish_attempt(attempt, outcome="failed", failure_type=checks.failure_type or "validation_failed",
                                    message=checks.message, result=result)
                return
            integrate = loop.advance(task_id, "integrating")
    if scope.cancelled_caught and not attempt.cancelled_reason:
        loop.finish_attempt(attempt, outcome="failed", failure_type="timeout", result=result,
                            message=f"attempt exceeded agents.attempt_timeout_seconds="
                                    f"{ctx.config.agents.attempt_timeout_seconds:g}")
        return
    if not integrate or attempt.cancelled_reason:
        loop.finish_attempt(attempt, outcome="cancelled", result=result)
        return
    await loop.enqueue_integration(attempt, spec.title, result, tree)


def _log(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
