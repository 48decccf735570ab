"""The coordinator loop: feeds the pure scheduler, runs agents, stores every change.

Room: runtime, the top of the engine: only ``app/`` builds a Coordinator (``app/launch.py``)
or drives one (``app/demo_capture.py``); no runtime module imports this one. The steps the
loop calls live in modules of their own and see the run through
:class:`~hybrid_tui.runtime.context.RunContext` (which this class provides):

- ``dispatch`` starts attempts, ``attempt`` runs one, ``settle`` stores an attempt's end,
  ``integration`` commits onto the mission branch, ``controls`` applies operator commands,
  ``recovery`` repairs the store at start-up, ``monitor`` samples the machine, ``planning``
  plans issues, ``startup`` loads specs and the scheduler;
- ``task_state`` is the one place a task's status is written (the scheduler's change records).

The loop owns the only way to write: :meth:`Coordinator.transaction` (a nested call joins
the open one). Steps put what must happen after the commit on the transaction's
:class:`~hybrid_tui.runtime.context.Effects`; :meth:`Coordinator._apply_effects` applies
them, once the transaction committed and its events reached ``events.jsonl``. The store is
the single source of truth: a console (in this process or attached from another) sees
exactly what happened, and a crash loses at most the attempt that was running.

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
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
from anyio.abc import TaskGroup

from hybrid_tui.agents.base import AttemptLimits, ImplementResult, Implementer, Planner
from hybrid_tui.core.changes import CancelRunning, LockAcquired
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import SisTask
from hybrid_tui.store import engine_reads, writes
from hybrid_tui.store.db import Store
from hybrid_tui.runtime import settle, startup
from hybrid_tui.runtime import events as ev
from hybrid_tui.runtime.attempt import run_attempt
from hybrid_tui.runtime.attempt_clock import AttemptClock
from hybrid_tui.runtime.batch import run_batch
from hybrid_tui.runtime.backends import BackendUnavailable, make_backend
from hybrid_tui.runtime.context import Effects, IntegrationJob, Launch, RunningAttempt, Transaction
from hybrid_tui.runtime.controls import apply_control
from hybrid_tui.runtime.disk import disk_full_reason, exception_leaves, unwritable_reason
from hybrid_tui.runtime.dispatch import dispatch_round
from hybrid_tui.runtime.forecasting import RunForecaster
from hybrid_tui.runtime.integration import integrate_job
from hybrid_tui.runtime.monitor import ResourceMonitor
from hybrid_tui.runtime.planning import PLANNING_FAILED_PREFIX, plan_issues
from hybrid_tui.runtime.record import Recorder
from hybrid_tui.runtime.recovery import interrupt_running, pause_for_disk_full, pause_stopped_run, recover
from hybrid_tui.runtime.runlock import RunLock
from hybrid_tui.runtime.task_state import apply_changes
from hybrid_tui.vocabulary import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_STOPPED, UNSUCCESSFUL_STATUSES

__all__ = ["BackendUnavailable", "Coordinator", "SettleError", "make_backend"]


SETTLE_ERROR_PREFIX = "coordinator error storing the end of"


class SettleError(Exception):
    """Storing an attempt's end failed (a hybrid-tui bug): the run pauses, the store consistent."""


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
    """Runs one run to completion. ``await run()`` returns the exit code.

    It is the run's :class:`~hybrid_tui.runtime.context.RunContext` for the steps (the
    public attributes below) and the :class:`~hybrid_tui.runtime.context.AttemptLoop` of
    its attempts."""

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
        broker: str | None = None,
        lease_seconds: float | None = None,
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
        self.lock = RunLock(self.run_dir, store, run_id)
        self.control_feed = store.change_feed(run_id, slow_poll_seconds=2.0)
        self.events = ev.EventLog(store, run_id, self.run_dir / "events.jsonl", clock)
        self.pool_override = agents
        self.repo = None
        if git:
            # Lazy: workspace.git loads GitPython, which a run with git off never needs.
            from hybrid_tui.workspace.git import MissionRepo

            self.repo = MissionRepo(Path(run.repo_path), run.mission_branch, self.run_dir, run_id,
                                    workspace=self.config.workspace)
        self.pricing = PricingTable.load(self.config.pricing or None)
        self.workers: Any = None
        if broker:
            # Lazy: Celery and redis-py load only for a run with workers.
            from hybrid_tui.runtime.broker import DEFAULT_LEASE_SECONDS
            from hybrid_tui.runtime.remote import RemoteImplementer, WorkerPool

            if self.repo is None:
                raise ValueError("--broker needs git: workers fetch the base commit and return a patch")
            self.workers = WorkerPool(broker, endpoint=Path(run.repo_path).absolute().as_uri(), backend=self.backend_name,
                                      lease_seconds=lease_seconds or DEFAULT_LEASE_SECONDS, pace=pace, seed=seed)
            self.implementer = RemoteImplementer(self.workers, self, self.backend_name)
        self.scheduler: Any = None
        self.specs: dict[str, SisTask] = {}
        self.running: dict[str, RunningAttempt] = {}
        self.attempt_clock = AttemptClock(lambda: self.config.agents.attempt_timeout_seconds, self.running,
                                          on_suspended=self._note_suspension)
        self.feedback: dict[str, str] = {}
        self.agents: dict[str, str] = {}  # agent id -> worktree path ("" without git)
        self.recorder = Recorder(self.run_dir)  # what each attempt did, for export-replay
        self.monitor = ResourceMonitor(self)  # psutil samples, resource pauses (tests may swap it)
        self.forecaster = RunForecaster(self)  # the time forecast and why ready tasks wait, in the store
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

    # ------------------------------------------------------------------ main
    async def run(self) -> int:
        self.lock.acquire()  # raises RunLocked: the caller prints one line and exits 2
        try:
            return await self._run_locked()
        except Exception as exc:  # a full disk (store, logs, git) leaves the run paused, not crashed
            settle_error = next((e for e in exception_leaves(exc) if isinstance(e, SettleError)), None)
            if settle_error is not None:
                return pause_stopped_run(
                    self, f"{settle_error} - a hybrid-tui bug, please report it; `hybrid-tui resume {self.run_id}` "
                          "continues from the last stored state", event_kind="coordinator.error",
                    cause="coordinator_error")
            reason = disk_full_reason(exc)
            if reason is not None:
                return pause_for_disk_full(self, reason)
            reason = unwritable_reason(exc)
            if reason is None:
                raise
            # The run folder stopped taking writes: the same clean stop, and the operator's
            # one line (exit 2: their file system, not the mission, needs fixing).
            pause_stopped_run(self, f"{reason} - make it writable, then `hybrid-tui resume {self.run_id}`",
                              event_kind="pause.resource", cause="unwritable")
            return EXIT_BAD_INPUT
        finally:
            gc.unfreeze()  # what _long_lived_objects froze is the cyclic collector's again
            self.monitor.close()
            self.events.close()
            self.recorder.close()
            self.control_feed.close()
            self.lock.release()

    async def _run_locked(self) -> int:
        with self.transaction():
            writes.set_run_coordinator(self.run_id, os.getpid(), socket.gethostname(), self.clock())
        await recover(self)
        run = self.store.get_run(self.run_id)
        replan = run.status == "paused" and (run.pause_reason or "").startswith(PLANNING_FAILED_PREFIX)
        if run.status in ("created", "planning") or replan:
            failures = await self._plan()
            if failures:  # paused, not finished: nothing runs on a partial plan; resume plans again
                self._set_run_status("paused", reason=(
                    f"{PLANNING_FAILED_PREFIX} for {'; '.join(failures)} - fix the cause (or add a reviewed "
                    f"sis/<issue>.json), then `hybrid-tui resume {self.run_id}` plans it again"))
                return EXIT_STOPPED
        with _long_lived_objects():
            self._load_specs()
            self._build_scheduler()
        self.recorder.open()
        if self._paused() and (self.scheduler.pause_reason or "").startswith(SETTLE_ERROR_PREFIX):
            now = self.clock()  # resumed after that error: the operator asked to carry on
            self._persist(self.scheduler.resume(now), now)
        code = EXIT_OK
        if self.workers is not None:  # the live workers known before the first dispatch
            await anyio.to_thread.run_sync(self.workers.refresh)
        send, receive = anyio.create_memory_object_stream[IntegrationJob](math.inf)
        self._integrate_tx = send
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._integration_worker, receive)
            tg.start_soon(self.attempt_clock.run)
            if self.workers is not None:
                tg.start_soon(self.workers.serve, self)
            try:
                code = await self._loop()
            finally:
                tg.cancel_scope.cancel()
        self._tg = None
        self._settle_finished()  # ends handed over while the loop was stopping
        if self._stop and self._finished_marked and self.scheduler.is_finished() and not self.running:
            # Quitting the console on a finished run: it stays finished, with the exit code a
            # headless run gives (0, or 1 with failed tasks), not "stopped by the operator".
            return self._final_code()
        if self._stop or code == EXIT_STOPPED:
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
            self._forecast(now)
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
        self.forecaster.note_wait(now)

    def _forecast(self, now: float) -> None:
        if self._tg is not None:
            live = len(self.agents) - len(self._draining)
            self.forecaster.maybe_refresh(now, self._tg, max(live, self._pool_target()))

    def _final_code(self) -> int:
        bad = engine_reads.count_tasks_in(self.run_id, UNSUCCESSFUL_STATUSES)
        return EXIT_FAILED if bad else EXIT_OK

    def _paused(self) -> bool:
        return bool(getattr(self.scheduler, "paused", False))

    async def _heartbeat_until_cancelled(self) -> None:
        while True:
            self._heartbeat(self.clock())
            await anyio.sleep(self.heartbeat_interval)

    def _heartbeat(self, now: float) -> None:
        if now - self._last_heartbeat < self.heartbeat_interval:
            return
        self._last_heartbeat = now
        if self.lock.shm_replaced() and not self._stop:
            # Someone deleted the store's WAL index: processes (and threads) opening the store
            # now would not see each other's writes. Stop cleanly; `resume` starts afresh.
            self._stop, self._stop_reason = True, "state.db-shm was deleted or replaced while the run went"
            print(f"hybrid-tui: run {self.run_id}: {self._stop_reason}; stopping (resume carries on)", file=sys.stderr)
        writes.set_run_heartbeat(self.run_id, now)

    def _set_run_status(self, status: str, *, reason: str = "", finished: bool = False) -> None:
        now = self.clock()
        with self.transaction():
            writes.set_run_status(self.run_id, status, reason, finished_at=now if finished else None)
            self.events.add(f"run.{status}", reason or status)

    # ------------------------------------------------------------------ planning
    async def _plan(self) -> list[str]:
        """Plan every issue that has no tasks yet (L2). Returns the issues whose planning failed.
        The heartbeat goes on meanwhile: planning can take minutes, and a console attached from
        another machine would otherwise call the coordinator lost."""
        self._set_run_status("planning")
        async with anyio.create_task_group() as planning:
            planning.start_soon(self._heartbeat_until_cancelled)
            failures = await plan_issues(self)
            planning.cancel_scope.cancel()
        if not failures:
            self._set_run_status("running")
        return failures

    # ------------------------------------------------------------------ scheduler
    def _load_specs(self) -> None:
        startup.load_specs(self)

    def _build_scheduler(self) -> None:
        now = self.clock()
        self.scheduler, changes = startup.restore_scheduler(self, now)
        self._persist(changes, now)
        startup.store_scores(self)

    # ------------------------------------------------------------------ the one transaction API
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """The only way the engine writes: one store write transaction for several steps that
        have no side effect between them (a loop turn's ends, tick and dispatch; an attempt's
        last steps). A nested call joins the open one. The steps' effects (and the
        events.jsonl lines) are applied only once the whole transaction committed; on a
        rollback they are dropped."""
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
        self._apply_effects(txn.effects)

    def _apply_effects(self, effects: Effects) -> None:
        """What the committed transaction's steps asked for: the one place the loop acts on
        stored changes."""
        for task_id in effects.ended:
            self.running.pop(task_id, None)
        for change in effects.cancels:
            self._cancel(change)
        for launch in effects.launches:
            self._launch(launch)
        for agent_id in effects.removed_agents:
            self.agents.pop(agent_id, None)
            self._draining.discard(agent_id)
        if effects.policy_paused is not None:
            # A pause the headless run may exit on: not one the operator asked for.
            self.policy_paused = effects.policy_paused and not self._in_operator_control
        if effects.stop is not None:
            self.request_stop(effects.stop)
        if effects.wake:
            self._wake.set()

    def _persist(self, changes: Any, now: float) -> None:
        """Store the scheduler's ``changes`` (in order); effects after the commit."""
        apply_changes(self, changes, now)

    def _cancel(self, change: CancelRunning) -> None:
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
            writes.register_agents(self.store, self.run_id, added, backend=self.backend_name,
                                   model=self.config.models.implementer, now=now, version=txn.version)
            for agent_id, worktree in added.items():
                self.agents[agent_id] = worktree
                self._persist(self.scheduler.add_agent(agent_id, now, self.backend_name), now)
        return True

    def is_quiet(self) -> bool:
        """Nothing queued for integration and the pool at its target (no agent being added or
        draining): what a driver stepping the run by hand (the demo capture) waits for."""
        if self._integrating:
            return False
        live = [a for a in self.agents if a not in self._draining]
        return self.scheduler is None or len(live) == self._pool_target()

    def _pool_target(self) -> int:
        target = self.scheduler.pool_target
        if target is None:
            target = engine_reads.run_pool_target(self.run_id)
        if self.workers is not None:  # no more agent slots than the live workers have
            target = min(int(target), self.workers.total_slots())
        return max(1, int(target))

    def _note_suspension(self, seconds: float) -> None:
        with self.transaction():
            self.events.add("run.suspended", f"the coordinator did not run for {seconds:.1f} s (stopped or starved); "
                            "running attempts' time limits leave it out", level="warning", seconds=round(seconds, 3))

    def _dispatch(self, now: float) -> None:
        dispatch_round(self, now, self.config.policies.dispatch_batch)

    def _launch(self, launch: Launch) -> None:
        for one in (launch, *launch.members):
            attempt = one.attempt
            self._dispatch_seq += 1
            attempt.dispatch_seq = self._dispatch_seq
            self.running[attempt.task_id] = attempt
            self.attempt_clock.start(attempt)
        assert self._tg is not None
        if launch.members:
            self._tg.start_soon(self._run_batch, launch)
            return
        attempt = launch.attempt
        self._tg.start_soon(self._run_attempt, attempt, launch.spec, launch.model, launch.log_path, launch.feedback)

    async def _run_batch(self, launch: Launch) -> None:
        try:
            await run_batch(self, self, launch)
        except Exception as exc:  # as for one attempt: a bug must not take the run down
            if disk_full_reason(exc):
                raise
            with self.transaction():
                self.events.add("coordinator.error", f"{type(exc).__name__}: {exc}", level="error",
                                task_id=launch.attempt.task_id, attempt=launch.attempt.number)
            for one in (launch, *launch.members):
                attempt = one.attempt
                if not attempt.finishing and attempt.task_id in self.running:
                    self.finish_attempt(attempt, outcome="failed", failure_type="agent_error",
                                        message=f"coordinator error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ one attempt
    async def _run_attempt(self, attempt: RunningAttempt, spec: SisTask, model: str, log_path: Path, feedback: str) -> None:
        try:
            await run_attempt(self, self, attempt, spec, model, log_path, feedback)
        except Exception as exc:  # a bug in one attempt must not take the whole run down
            if disk_full_reason(exc):
                raise  # a full disk is not this attempt's fault: run() pauses the run
            with self.transaction():
                self.events.add("coordinator.error", f"{type(exc).__name__}: {exc}", level="error",
                                task_id=attempt.task_id, attempt=attempt.number)
            if not attempt.finishing and attempt.task_id in self.running:
                self.finish_attempt(attempt, outcome="failed", failure_type="agent_error",
                                    message=f"coordinator error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ AttemptLoop
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
        self._settle_later(attempt, functools.partial(
            settle.settle_attempt, self, attempt, outcome=outcome, failure_type=failure_type, message=message,
            result=result, retry_after=retry_after, commit=commit,
        ))

    def finish_unchecked(self, attempt: RunningAttempt, result: ImplementResult) -> None:
        """Git off, no checks: validating -> integrating -> the attempt's end, in the next
        settle transaction (a cancel that arrived meanwhile makes it a cancelled end)."""
        self._settle_later(attempt, functools.partial(self._end_unchecked, attempt, result))

    def _end_unchecked(self, attempt: RunningAttempt, result: ImplementResult) -> None:
        if self.advance(attempt.task_id, "validating", "integrating"):
            settle.settle_attempt(self, attempt, outcome="succeeded", result=result)
        else:
            settle.settle_attempt(self, attempt, outcome="cancelled", result=result)

    def _settle_later(self, attempt: RunningAttempt, step: Callable[[], None]) -> None:
        """Queue ``step`` (which ends ``attempt``: it must call ``settle.settle_attempt``)
        for the loop's next settle transaction."""
        attempt.finishing = True
        self._settle_queue.append((attempt, step))
        self._wake.set()

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

    def advance(self, task_id: str, *phases: str) -> bool:
        """Move a running attempt's task through ``phases`` (stored in one transaction);
        False when it was cancelled meanwhile."""
        attempt = self.running.get(task_id)
        if attempt is not None and attempt.cancelled_reason:
            return False
        now = self.clock()
        with self.transaction():
            for phase in phases:
                self._persist(self.scheduler.advance(task_id, phase, now), now)
        return True

    def claim_file(self, task_id: str, path: str) -> bool:
        """The sandbox asks for an undeclared file's lock (called on the loop thread)."""
        now = self.clock()
        result = self.scheduler.request_lock(task_id, path, now)
        if isinstance(result, tuple):
            granted, changes = result
        else:  # a list of changes: granted when a LockAcquired for this path is among them
            changes = result
            granted = any(isinstance(c, LockAcquired) and c.path == path for c in changes)
        self._persist(changes, now)
        return bool(granted)

    async def enqueue_integration(self, attempt: RunningAttempt, title: str, result: ImplementResult,
                                  tree: str | None = None) -> None:
        self._integrating += 1
        await self._integrate_tx.send(IntegrationJob(attempt, title, result, tree))

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

    # ------------------------------------------------------------------ integration
    async def _integration_worker(self, receive: Any) -> None:
        async with receive:
            async for job in receive:
                try:
                    await integrate_job(self, self, job)
                finally:
                    self._integrating -= 1
                    if not job.attempt.finishing:  # its end is not queued: it failed before
                        self.running.pop(job.attempt.task_id, None)
                    self._wake.set()

    # ------------------------------------------------------------------ controls
    async def _apply_controls(self, now: float) -> None:
        # On PostgreSQL the control queue is read when a NOTIFY (or the slow poll) says the
        # run changed, not every loop turn; on SQLite the feed always says so.
        if not self.control_feed.changed():
            return
        for control in self.store.pending_controls(self.run_id):
            self._in_operator_control = True
            try:
                applied, result = await apply_control(self, control.command, json.loads(control.args_json or "{}"), now)
            except Exception as exc:  # a bad command must not take the coordinator down
                applied, result = False, str(exc) or type(exc).__name__
            finally:
                self._in_operator_control = False
            with self.transaction():
                writes.settle_control(control.id, "applied" if applied else "rejected", result, self.clock())
                self.events.add(
                    "control." + ("applied" if applied else "rejected"),
                    f"{control.command}: {result}",
                    level="info" if applied else "warning",
                    command=control.command,
                    control_id=control.id,
                )
