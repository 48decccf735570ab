"""The coordinator loop: feeds the pure scheduler, runs agents, persists every change.

Room: runtime. Drives ``core`` (decisions), ``agents`` (work), ``workspace`` (git,
validation) and writes the ``store`` — the single source of truth: every change the
scheduler returns is written in a store transaction before the coordinator acts on the next
one, so a console (in this process or attached from another) sees exactly what happened,
and a crash loses at most the attempt that was running.

Concurrency (anyio): one loop task (controls, tick, dispatch, heartbeat), one child task per
running attempt (own cancel scope and timeout), and ONE integration worker consuming a
memory object stream, so integrations onto the mission branch never run concurrently. Git
and validation run in worker threads / subprocesses; store writes stay on the loop thread
(peewee connections are per thread) and short.

Group commit: an attempt's end (and, git off, its last steps) is handed to the loop
(:meth:`Coordinator.finish_attempt`), which stores the ends of every attempt that finished
since its last turn in ONE transaction before it acts on them (frees agents, dispatches
dependents). A bug while storing an end rolls that whole transaction back and pauses the
run (:class:`SettleError`): the store stays consistent, and ``resume`` rebuilds the
scheduler from it and runs those attempts again.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
from anyio.abc import TaskGroup

from hybrid_tui.agents.base import AttemptLimits, ImplementResult, Implementer, Planner
from hybrid_tui.core.tiering import select_model
from hybrid_tui.spec.models import SisTask, Usage
from hybrid_tui.store import models as m
from hybrid_tui.store.db import Store
from hybrid_tui.runtime import attempt as attempts
from hybrid_tui.runtime import events as ev
from hybrid_tui.runtime import persist, record
from hybrid_tui.runtime.monitor import disk_full_reason
from hybrid_tui.runtime.runlock import RunLock
from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK, EXIT_STOPPED



def make_backend(name: str, *, pace: float = 0.0, seed: int = 0, git: bool = True, failure_rate: float = 0.0, config: Any = None):
    """(planner, implementer) for a backend name."""
    if name == "replay":
        from hybrid_tui.agents.replay import ReplayImplementer, ReplayPlanner

        return ReplayPlanner(), ReplayImplementer(pace=pace)
    if name == "sim":
        from hybrid_tui.agents.sim import SimImplementer, SimPlanner

        return SimPlanner(seed=seed, pace=pace), SimImplementer(seed=seed, pace=pace, git=git, failure_rate=failure_rate)
    if name == "anthropic":
        from hybrid_tui.agents import anthropic as backend  # type: ignore[attr-defined]

        return backend.make_planner(config), backend.make_implementer(config)  # type: ignore[attr-defined]
    if name == "cli":
        from hybrid_tui.agents.cli_agent import make_implementer

        return None, make_implementer(config)
    raise ValueError(f"unknown backend {name!r} (replay, sim, anthropic, cli)")


SETTLE_ERROR_PREFIX = "coordinator error storing the end of"


class SettleError(Exception):
    """Storing an attempt's end failed (a hybrid-tui bug): the run pauses, the store consistent."""


@dataclass
class RunningAttempt:
    task_id: str
    agent_id: str
    number: int
    dispatch_seq: int  # the order attempts were started in (this process)
    started: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cost_usd: float = 0.0
    cancelled_reason: str = ""
    finishing: bool = False  # its end is queued for the loop's next settle


@dataclass
class Transaction:
    """The coordinator's open store transaction: its change version, and the side effects
    (cancelling attempts, starting them) that may only happen once it committed."""

    version: int = 0
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    # Joining the open transaction (a nested ``Coordinator.transaction()``) is ``with`` on
    # the transaction itself: several times a task, so no context manager is built for it.
    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class IntegrationJob:
    attempt: RunningAttempt
    title: str
    result: ImplementResult


@contextlib.contextmanager
def _long_lived_objects() -> Iterator[None]:
    """Loading the specs and building the scheduler makes every task's objects at once, and
    they live as long as the run. The cyclic collector would walk them over and over while
    they are made (some 40% of a 10,000-task start-up) and again at every full collection
    of the run: it is paused while they are made, then they are frozen out of its sight
    (``gc.freeze``) until :meth:`Coordinator.run` ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
    gc.freeze()


class Coordinator:
    """Runs one run to completion. ``await run()`` returns the exit code."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        mission: Any,
        *,
        backend: str | tuple[Planner | None, Implementer] = "replay",
        pace: float = 0.0,
        git: bool = True,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        agents: int | None = None,
        exit_when_finished: bool = True,
        exit_on_policy_pause: bool = True,
        poll_interval: float = 0.05,
        heartbeat_interval: float = 1.0,
        seed: int = 0,
    ):
        self.store = store
        self.run_id = run_id
        self.mission = mission
        self.config = mission.config
        self.pace = pace
        self.git = git
        self.clock = clock
        self.rng = rng or random.Random(seed)
        self.exit_when_finished = exit_when_finished
        self.exit_on_policy_pause = exit_on_policy_pause
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        if isinstance(backend, str):
            self.backend_name = backend
            self.planner, self.implementer = make_backend(backend, pace=pace, seed=seed, git=git, config=self.config)
        else:
            self.planner, self.implementer = backend
            self.backend_name = getattr(self.implementer, "name", "custom")
        run = store.get_run(run_id)
        self.run_dir = Path(run.run_dir)
        self.logs_dir = self.run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.run_dir)
        self.events = ev.EventLog(store, run_id, self.run_dir / "events.jsonl", clock)
        from hybrid_tui.runtime.monitor import ResourceMonitor

        self.monitor = ResourceMonitor(self)  # psutil samples, resource pauses (tests may swap it)
        from hybrid_tui.runtime.record import Recorder

        self.recorder = Recorder(self.run_dir)  # what each attempt did, for export-replay
        self.pool_override = agents
        self.repo = None
        if git:
            from hybrid_tui.workspace.git import MissionRepo

            self.repo = MissionRepo(Path(run.repo_path), run.mission_branch, self.run_dir, run_id)
        from hybrid_tui.costs.pricing import PricingTable

        self.pricing = PricingTable.load(self.config.pricing or None)
        self.scheduler: Any = None
        self.specs: dict[str, SisTask] = {}
        self.running: dict[str, RunningAttempt] = {}
        self.feedback: dict[str, str] = {}
        self.agents: dict[str, str] = {}  # agent id -> worktree path ("" without git)
        self._stop = False
        self._stop_reason = ""
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        self._integrate_tx: Any = None
        self._integrating = 0
        self._last_heartbeat = 0.0
        self._agent_counter = 0
        self._finished_marked = False
        self._draining: set[str] = set()
        self._in_operator_control = False
        self.policy_paused = False
        self._txn: Transaction | None = None
        self._settle_queue: list[tuple[RunningAttempt, Callable[[], None]]] = []
        self._dispatch_seq = 0

    # ------------------------------------------------------------------ public control
    def request_stop(self, reason: str = "operator") -> None:
        """Stop dispatching, interrupt running attempts, return from :meth:`run` (exit 3)."""
        self._stop = True
        self._stop_reason = reason
        self._wake.set()

    def cost_of(self, model: str, usage: Usage) -> float:
        return self.pricing.cost(model, usage)

    # ------------------------------------------------------------------ main
    async def run(self) -> int:
        self.lock.acquire()  # raises RunLocked: the caller prints one line and exits 2
        try:
            return await self._run_locked()
        except Exception as exc:  # a full disk (store, logs, git) leaves the run paused, not crashed
            from hybrid_tui.runtime.monitor import exception_leaves, pause_for_disk_full, pause_stopped_run

            settle_error = next((e for e in exception_leaves(exc) if isinstance(e, SettleError)), None)
            if settle_error is not None:
                return pause_stopped_run(
                    self, f"{settle_error} - a hybrid-tui bug, please report it; `hybrid-tui resume {self.run_id}` "
                          "continues from the last stored state", event_kind="coordinator.error",
                    cause="coordinator_error")
            reason = disk_full_reason(exc)
            if reason is None:
                raise
            return pause_for_disk_full(self, reason)
        finally:
            gc.unfreeze()  # what _long_lived_objects froze is the cyclic collector's again
            self.monitor.close()
            self.events.close()
            self.recorder.close()
            self.lock.release()

    async def _run_locked(self) -> int:
        from hybrid_tui.runtime.recovery import recover

        with self.store.write(self.run_id):
            m.Run.update(
                coordinator_pid=os.getpid(), coordinator_host=socket.gethostname(), heartbeat_at=self.clock()
            ).where(m.Run.id == self.run_id).execute()
        await recover(self)
        run = self.store.get_run(self.run_id)
        if run.status in ("created", "planning"):
            if not await self._plan():
                self._set_run_status("finished", finished=True)
                return EXIT_FAILED
        with _long_lived_objects():
            self._load_specs()
            self._build_scheduler()
        if self._paused() and (self.scheduler.pause_reason or "").startswith(SETTLE_ERROR_PREFIX):
            now = self.clock()  # resumed after that error: the operator asked to carry on
            self._persist(self.scheduler.resume(now), now)
        code = EXIT_OK
        send, receive = anyio.create_memory_object_stream[IntegrationJob](math.inf)
        self._integrate_tx = send
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._integration_worker, receive)
            try:
                code = await self._loop()
            finally:
                tg.cancel_scope.cancel()
        self._tg = None
        self._settle_finished()  # ends handed over while the loop was stopping
        if self._stop or code == EXIT_STOPPED:
            from hybrid_tui.runtime.recovery import interrupt_running

            interrupt_running(self, reason=f"stopped: {self._stop_reason or 'operator'}")
            if self._stop:
                self._set_run_status("stopped", reason=self._stop_reason)
            # else paused by a policy: the run stays 'paused' with its reason until resumed
            return EXIT_STOPPED
        self._set_run_status("finished", finished=True)
        return code

    async def _loop(self) -> int:
        while True:
            now = self.clock()
            await self._apply_controls(now)
            await self.monitor.tick(now)
            if self._stop:
                return EXIT_STOPPED  # the queued ends are settled once the attempts stopped
            self._step(now)
            if not self._paused() and await self._ensure_agents(now):
                self._dispatch(now)  # the agents just added
            self._heartbeat(now)
            idle = not self.running and self._integrating == 0 and not self._settle_queue
            if idle and self.scheduler.is_finished():
                if self.exit_when_finished:
                    return self._final_code()
                if not self._finished_marked:  # lingering for the console: show it finished
                    self._finished_marked = True
                    self._set_run_status("finished", finished=True)
            elif self._finished_marked and not self.scheduler.is_finished():
                self._finished_marked = False  # an operator retry reopened the run
                self._set_run_status("paused" if self._paused() else "running", reason=getattr(self.scheduler, "pause_reason", ""))
            if idle and self._paused() and self.policy_paused and self.exit_on_policy_pause:
                return EXIT_STOPPED
            with anyio.move_on_after(self.poll_interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _step(self, now: float) -> None:
        """Settle the attempts that ended, tick, dispatch: ONE transaction when any of them
        has something to store (the dependents an end readies are dispatched in the same
        commit), none on a quiet turn."""
        if not self._settle_queue:
            self._tick_and_dispatch(now)
            return
        with self.transaction():
            self._settle_finished()
            self._tick_and_dispatch(now)

    def _tick_and_dispatch(self, now: float) -> None:
        self._persist(self.scheduler.tick(now), now)
        if not self._paused():
            self._dispatch(now)

    def _final_code(self) -> int:
        bad = (
            m.Task.select()
            .where((m.Task.run == self.run_id) & (m.Task.status.in_(["failed", "blocked", "cancelled"])))
            .count()
        )
        return EXIT_FAILED if bad else EXIT_OK

    def _paused(self) -> bool:
        return bool(getattr(self.scheduler, "paused", False))

    def _heartbeat(self, now: float) -> None:
        if now - self._last_heartbeat < self.heartbeat_interval:
            return
        self._last_heartbeat = now
        # A plain update (no version bump): the console need not redraw for a heartbeat.
        m.Run.update(heartbeat_at=now).where(m.Run.id == self.run_id).execute()

    def _set_run_status(self, status: str, *, reason: str = "", finished: bool = False) -> None:
        now = self.clock()
        with self.store.write(self.run_id):
            fields: dict[str, Any] = {"status": status, "pause_reason": reason}
            if finished:
                fields["finished_at"] = now
            m.Run.update(**fields).where(m.Run.id == self.run_id).execute()
            self.events.add(f"run.{status}", reason or status)
        self.events.flush()

    # ------------------------------------------------------------------ planning
    async def _plan(self) -> bool:
        """Plan every issue that has no tasks yet (L2). Returns False when planning failed."""
        from hybrid_tui.runtime.planning import plan_issues

        self._set_run_status("planning")
        ok = await plan_issues(self)
        if ok:
            self._set_run_status("running")
        return ok

    # ------------------------------------------------------------------ scheduler
    def _load_specs(self) -> None:
        # The store's spec is the truth, but where the loaded mission holds the very same task
        # (same JSON, as create_run wrote it) its object is reused: a second parsed copy of
        # every spec costs ~4 kB a task (~44 MB at 10,000 tasks).
        loaded = {t.task_id: t for t in getattr(self.mission, "tasks", None) or () if isinstance(t, SisTask)}
        for task_id, spec_json in (
            m.Task.select(m.Task.task_id, m.Task.spec_json).where(m.Task.run == self.run_id).tuples().iterator()
        ):
            same = loaded.get(task_id)
            if same is None or same.model_dump_json() != spec_json:
                same = SisTask.model_validate_json(spec_json)
            self.specs[task_id] = same
        # Feedback for the next attempt survives a restart: the last failed attempt's output.
        for att in (
            m.Attempt.select()
            .where((m.Attempt.run == self.run_id) & (m.Attempt.phase != "planning") & (m.Attempt.outcome == "failed"))
            .order_by(m.Attempt.number)
        ):
            self.feedback[att.task_id] = att.failure_message

    def _build_scheduler(self) -> None:
        from hybrid_tui.runtime.schedule import build_scheduler

        self.scheduler = build_scheduler(self)
        self._store_scores()

    def _store_scores(self) -> None:
        """Write every queued task's priority score once, so the console shows it from the start."""
        queued = [tid for tid in self.scheduler.task_ids() if self.scheduler.status(tid).value in ("pending", "ready")]
        if not queued:
            return
        with self.store.write(self.run_id) as version:
            self.store.update_many(m.Task, ("score", "version"), ("run", "task_id"),
                                   [(self.scheduler.score(tid), version, self.run_id, tid) for tid in queued])

    # ------------------------------------------------------------------ persistence
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """One store write transaction for several steps that have no side effect between
        them (a dispatch round; an attempt's last steps). A nested call joins the open one.
        Side effects go to ``after_commit`` and run, like the events.jsonl lines, only once
        the whole transaction committed; on a rollback they are dropped with the lines."""
        return self._txn if self._txn is not None else self._outermost_transaction()

    @contextlib.contextmanager
    def _outermost_transaction(self) -> Iterator[Transaction]:
        txn = Transaction()
        self._txn = txn
        try:
            with self.store.write(self.run_id) as version:
                txn.version = version
                yield txn
        except BaseException:
            self.events.discard()
            raise
        finally:
            self._txn = None
        self.events.flush()
        for effect in txn.after_commit:
            effect()

    def _persist(self, changes: Any, now: float) -> None:
        """Write ``changes`` (in order) in one transaction, then act on side effects."""
        if not changes:
            return
        with self.transaction() as txn:
            cancels = persist.persist_changes(self, changes, now, txn.version)
            if cancels:
                txn.after_commit.append(functools.partial(self.act_on_cancels, cancels))
        self._wake.set()

    def act_on_cancels(self, cancels: list[Any]) -> None:
        for change in cancels:
            attempt = self.running.get(change.task_id)
            if attempt is not None:
                attempt.cancelled_reason = change.reason or "cancelled"
                attempt.scope.cancel()

    # ------------------------------------------------------------------ agents and dispatch
    async def _ensure_agents(self, now: float) -> bool:
        """Grow the pool toward its target, at most ``dispatch_batch`` new agents per tick;
        shrink it by removing agents (busy ones drain). True when agents were added."""
        target = self._pool_target()
        live = [a for a in self.agents if a not in self._draining]
        if len(live) > target:
            for agent_id in sorted(live, reverse=True)[: len(live) - target]:
                self._draining.add(agent_id)
                self._persist(self.scheduler.remove_agent(agent_id, now), now)
            return False
        missing = target - len(live)
        if missing <= 0:
            return False
        added: dict[str, str] = {}
        for _ in range(min(missing, self.config.policies.dispatch_batch)):
            self._agent_counter += 1
            agent_id = f"agent-{self._agent_counter:02d}"
            worktree = ""
            if self.repo is not None:
                path = await anyio.to_thread.run_sync(self.repo.worktree, agent_id)
                worktree = str(path)
            added[agent_id] = worktree
        with self.transaction() as txn:  # the new agents' rows and the scheduler's changes together
            known = {
                agent_id: row_id for agent_id, row_id in m.Agent.select(m.Agent.agent_id, m.Agent.id).where(
                    (m.Agent.run == self.run_id) & m.Agent.agent_id.in_(list(added))
                ).tuples()
            }
            for agent_id, worktree in added.items():
                self.agents[agent_id] = worktree
                if agent_id in known:
                    self.store.update_rows(m.Agent, {"state": "idle", "task_id": None, "worktree": worktree,
                                                     "updated_at": now, "version": txn.version},
                                           where={"id": known[agent_id]})
                else:
                    self.store.insert_row(m.Agent, {
                        "run": self.run_id, "agent_id": agent_id, "role": "implementer", "backend": self.backend_name,
                        "model": self.config.models.implementer, "worktree": worktree, "created_at": now,
                        "updated_at": now, "version": txn.version,
                    })
                self._persist(self.scheduler.add_agent(agent_id, now, self.backend_name), now)
        return True

    def _pool_target(self) -> int:
        target = self.scheduler.pool_target
        if target is None:
            target = m.Run.get_by_id(self.run_id).pool_target
        return max(1, int(target))

    def _dispatch(self, now: float) -> None:
        """One dispatch round in ONE transaction: the scheduler's changes and every attempt
        row it starts; the attempts run only once that committed."""
        dispatches, changes = self.scheduler.dispatch(now, limit=self.config.policies.dispatch_batch)
        if not dispatches:
            self._persist(changes, now)
            return
        with self.transaction():
            self._persist(changes, now)
            for d in dispatches:
                self._start_attempt(d, now)

    def _start_attempt(self, d: Any, now: float) -> None:
        task_id, agent_id, number = d.task_id, d.agent_id, d.attempt
        spec = self.specs[task_id]
        feedback = d.feedback or ""
        with self.transaction() as txn:
            model = getattr(d, "model", None) or self._select_model(spec)
            log_path = self.logs_dir / f"{task_id}.{number}.log"
            self._dispatch_seq += 1
            self.store.staged.insert(m.Attempt, {
                "run": self.run_id,
                "task_id": task_id,
                "number": number,
                "phase": "implementing" if number == 1 else "retry",
                "agent_id": agent_id,
                "backend": self.backend_name,
                "model": model,
                "started_at": now,
                "feedback": feedback,
                "log_path": str(log_path),
                "version": txn.version,
            })
            self.store.staged.update(
                m.Task, {"attempts": number, "agent_id": agent_id, "started_at": now, "version": txn.version},
                where={"run": self.run_id, "task_id": task_id},
            )
            self.events.add(
                "attempt.started", f"attempt {number} on {agent_id} ({model})", task_id=task_id, attempt=number, agent_id=agent_id
            )
            attempt = RunningAttempt(task_id, agent_id, number, self._dispatch_seq, now)
            txn.after_commit.append(functools.partial(self._launch, attempt, spec, model, log_path, feedback))

    def _launch(self, attempt: RunningAttempt, spec: SisTask, model: str, log_path: Path, feedback: str) -> None:
        self.running[attempt.task_id] = attempt
        assert self._tg is not None
        self._tg.start_soon(self._run_attempt, attempt, spec, model, log_path, feedback)

    def _select_model(self, spec: SisTask) -> str:
        return select_model(spec, self.config.models)

    # ------------------------------------------------------------------ one attempt
    async def _run_attempt(self, attempt: RunningAttempt, spec: SisTask, model: str, log_path: Path, feedback: str) -> None:
        try:
            await attempts.run_attempt(self, attempt, spec, model, log_path, feedback)
        except Exception as exc:  # a bug in one attempt must not take the whole run down
            if disk_full_reason(exc):
                raise  # a full disk is not this attempt's fault: run() pauses the run
            with self.transaction():
                self.events.add("coordinator.error", f"{type(exc).__name__}: {exc}", level="error",
                                task_id=attempt.task_id, attempt=attempt.number)
            if not attempt.finishing and attempt.task_id in self.running:
                self.finish_attempt(attempt, outcome="failed", failure_type="agent_error",
                                    message=f"coordinator error: {type(exc).__name__}: {exc}")

    async def run_checks(self, validation: Any, cwd: Path, log_path: Path) -> Any:
        from hybrid_tui.workspace.validation import run_checks

        return await run_checks(
            validation, cwd, log_path=log_path, memory_cap_mb=self.config.policies.task_memory_cap_mb
        )

    def finish_attempt(
        self,
        attempt: RunningAttempt,
        *,
        outcome: str,
        failure_type: str | None = None,
        message: str = "",
        result: ImplementResult | None = None,
        retry_after: float | None = None,
        commit: Any = None,
    ) -> None:
        """Hand the attempt's end to the loop: stored (and told to the scheduler) in the next
        settle transaction, with every other end that arrived meanwhile."""
        self.settle_later(attempt, functools.partial(
            self.settle_attempt, attempt, outcome=outcome, failure_type=failure_type, message=message, result=result,
            retry_after=retry_after, commit=commit,
        ))

    def settle_later(self, attempt: RunningAttempt, step: Callable[[], None]) -> None:
        """Queue ``step`` (which ends ``attempt``: it must call :meth:`settle_attempt`) for
        the loop's next settle transaction."""
        attempt.finishing = True
        self._settle_queue.append((attempt, step))
        self._wake.set()

    def settle_attempt(
        self,
        attempt: RunningAttempt,
        *,
        outcome: str,
        failure_type: str | None = None,
        message: str = "",
        result: ImplementResult | None = None,
        retry_after: float | None = None,
        commit: Any = None,
    ) -> None:
        """Record the attempt's end and tell the scheduler, in the open (or a new) transaction."""
        # What the attempt did, for export-replay: before the store update frees the agent's worktree.
        record.record_attempt(self, attempt, outcome=outcome, failure_type=failure_type, message=message, result=result,
                              commit=commit)
        persist.record_attempt_end(self, attempt, outcome=outcome, failure_type=failure_type, message=message,
                                   result=result, retry_after=retry_after, commit=commit)

    def _settle_finished(self) -> None:
        """Store every queued attempt end in one transaction (group commit)."""
        if not self._settle_queue:
            return
        batch, self._settle_queue = self._settle_queue, []
        with self.transaction():
            for attempt, step in batch:
                self._settle_one(attempt, step)

    def _settle_one(self, attempt: RunningAttempt, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            if disk_full_reason(exc):
                raise  # the batch rolls back and the run pauses for the disk (Coordinator.run)
            # The scheduler may already have acted on part of this end, the store will not
            # have: rather than carry on with the two apart, stop with the store as it was.
            raise SettleError(f"{SETTLE_ERROR_PREFIX} {attempt.task_id} attempt {attempt.number}: "
                              f"{type(exc).__name__}: {exc}") from exc

    def policy_pause(self, reason: str) -> None:
        """Pause dispatching for a reason the runtime found (not an operator)."""
        now = self.clock()
        self._persist(self.scheduler.pause(reason, now), now)

    def advance(self, task_id: str, status: str) -> bool:
        """Move a running attempt's task to the next phase; False when it was cancelled meanwhile."""
        attempt = self.running.get(task_id)
        if attempt is not None and attempt.cancelled_reason:
            return False
        now = self.clock()
        self._persist(self.scheduler.advance(task_id, status, now), now)
        return True

    def claim_file(self, task_id: str, path: str) -> bool:
        """The sandbox asks for an undeclared file's lock (called on the loop thread)."""
        now = self.clock()
        result = self.scheduler.request_lock(task_id, path, now)
        if isinstance(result, tuple):
            granted, changes = result
        else:  # a list of changes: granted when a LockAcquired for this path is among them
            changes = result
            granted = any(type(c).__name__ == "LockAcquired" and getattr(c, "path", None) == path for c in changes)
        self._persist(changes, now)
        return bool(granted)

    # ------------------------------------------------------------------ integration
    async def enqueue_integration(self, attempt: RunningAttempt, title: str, result: ImplementResult) -> None:
        self._integrating += 1
        await self._integrate_tx.send(IntegrationJob(attempt, title, result))

    async def _integration_worker(self, receive: Any) -> None:
        async with receive:
            async for job in receive:
                try:
                    await attempts.integrate_job(self, job)
                finally:
                    self._integrating -= 1
                    if not job.attempt.finishing:  # its end is not queued: it failed before
                        self.running.pop(job.attempt.task_id, None)
                    self._wake.set()

    # ------------------------------------------------------------------ controls
    async def _apply_controls(self, now: float) -> None:
        from hybrid_tui.runtime.controls import apply_control

        for control in self.store.pending_controls(self.run_id):
            self._in_operator_control = True
            try:
                applied, result = await apply_control(self, control.command, json.loads(control.args_json or "{}"), now)
            except Exception as exc:  # a bad command must not take the coordinator down
                applied, result = False, str(exc) or type(exc).__name__
            finally:
                self._in_operator_control = False
            with self.store.write(self.run_id):
                m.Control.update(
                    status="applied" if applied else "rejected", result=result, applied_at=self.clock()
                ).where(m.Control.id == control.id).execute()
                self.events.add(
                    "control." + ("applied" if applied else "rejected"),
                    f"{control.command}: {result}",
                    level="info" if applied else "warning",
                    command=control.command,
                    control_id=control.id,
                )
            self.events.flush()

    # ------------------------------------------------------------------ helpers
    def limits(self, task_id: str | None = None) -> AttemptLimits:
        """The attempt limits; for a dispatched ``task_id`` the dollar cap is also held to what
        the mission budget has left for it: its own reservation plus what no other attempt
        holds, so one attempt costing more than its estimate cannot carry the run past the budget."""
        a = self.config.agents
        max_cost = a.max_cost_per_attempt
        if task_id is not None and self.scheduler is not None:
            max_cost = min(max_cost, self.scheduler.budget_for_attempt(task_id))
        return AttemptLimits(
            max_turns=a.max_turns,
            max_tokens=a.max_tokens_per_attempt,
            max_cost_usd=max_cost,
            timeout_seconds=a.attempt_timeout_seconds,
        )

    def recorded_attempt(self, task_id: str, number: int):
        """The recording replayed by attempt ``number``: attempts that were interrupted or
        cancelled did not really happen, so they do not use up a recording."""
        rec = getattr(self.mission, "recorded", {}).get(task_id)
        if rec is None:
            return None
        real = (
            m.Attempt.select()
            .where(
                (m.Attempt.run == self.run_id) & (m.Attempt.task_id == task_id) & (m.Attempt.number < number)
                & (m.Attempt.phase != "planning") & m.Attempt.outcome.not_in(["interrupted", "cancelled"])
            )
            .count()
        )
        return rec.attempts[real] if real < len(rec.attempts) else None
