"""What the engine's steps see of a run, and what they hand back to the loop.

Room: runtime, below the coordinator: every step module (dispatch, settle, task_state,
integration, controls, recovery, monitor, planning, startup) imports this module and never
``coordinator.py``.

- :class:`RunContext`: the run the steps work on (its id, config, clock, store handle,
  scheduler, specs, running attempts, agents, events, recorder, repository...) and
  ``transaction()``, which joins the loop's open write transaction (or opens one: the loop
  owns the only way to write). The coordinator is the one object that provides it.
- :class:`Effects`: what a step asks the loop to do once the transaction committed (start
  these attempts, cancel those, forget a removed agent, wake up, stop...). The steps put
  them on the open :class:`Transaction`; the coordinator applies them after the commit, in
  one place (``Coordinator._apply_effects``), and drops them on a rollback.
- :class:`AttemptLoop`: what a running attempt may ask of the loop (finish, advance its
  phase, claim a file, queue its integration, its limits).
- :class:`RunningAttempt`, :class:`IntegrationJob`, :class:`Launch`: the records passed around.
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import anyio

from hybrid_tui.agents.base import AttemptLimits, ImplementResult, Implementer, Planner
from hybrid_tui.core.changes import CancelRunning
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import SisTask
from hybrid_tui.store.db import Store
from hybrid_tui.runtime.events import EventLog
from hybrid_tui.runtime.record import Recorder


@dataclass
class RunningAttempt:
    task_id: str
    agent_id: str
    number: int
    dispatch_seq: int  # the order attempts were started in (this process)
    started: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cost_usd: float = 0.0
    usage: Any = None  # spec.models.Usage the backend reported billed so far (with cost_usd)
    cancelled_reason: str = ""
    finishing: bool = False  # its end is queued for the loop's next settle
    active_started: float = 0.0  # on the AttemptClock: its age leaves out a suspended coordinator
    worker: str = ""  # the worker process running it ("" in-process)


@dataclass
class IntegrationJob:
    attempt: RunningAttempt
    title: str
    result: ImplementResult
    tree: str | None = None  # a batch member's own staged tree (else the agent's staged work)


@dataclass
class Launch:
    """An attempt whose row is stored: the loop starts it once that committed."""

    attempt: RunningAttempt
    spec: SisTask
    model: str
    log_path: Path
    feedback: str
    # [policies.batch]: the other tasks of this attempt's batch (this one is its leader),
    # launched with it as ONE implementer session (runtime/batch.py).
    members: list[Launch] = field(default_factory=list)


@dataclass
class Effects:
    """What the loop does after the transaction commits, in this order (attempts that ended
    stop counting as running before a retry of the same task is launched)."""

    ended: list[str] = field(default_factory=list)  # task ids: their attempt stops counting as running
    cancels: list[CancelRunning] = field(default_factory=list)  # interrupt these running attempts
    launches: list[Launch] = field(default_factory=list)  # start these attempts
    removed_agents: list[str] = field(default_factory=list)  # the pool forgets these agents
    policy_paused: bool | None = None  # a pause (True) / resume (False) the run may exit on, if not the operator's
    stop: str | None = None  # stop the run, for this reason
    wake: bool = False  # the loop runs its next turn now


@dataclass
class Transaction:
    """The loop's open store write transaction: its change version and the effects to apply
    once it committed."""

    version: int = 0
    effects: Effects = field(default_factory=Effects)

    # Joining the open transaction (a nested ``transaction()``) is ``with`` on the
    # transaction itself: several times a task, so no context manager is built for it.
    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RunContext(Protocol):
    """The run as the engine's steps see it (the coordinator provides it)."""

    run_id: str
    run_dir: Path
    logs_dir: Path
    mission: Any
    config: Any  # the mission's MissionFile
    clock: Callable[[], float]
    rng: random.Random
    store: Store
    events: EventLog
    recorder: Recorder
    repo: Any  # workspace.git.MissionRepo, None with git off
    pricing: PricingTable
    backend_name: str
    planner: Planner | None
    implementer: Implementer
    scheduler: Any  # core.scheduler.Scheduler, once built
    specs: dict[str, SisTask]
    running: dict[str, RunningAttempt]
    agents: dict[str, str]  # agent id -> worktree path ("" without git)
    feedback: dict[str, str]  # task id -> what its next attempt is told about the last failure
    workers: Any  # runtime.remote.WorkerPool with --broker, else None (attempts run in-process)

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Join the open write transaction, or open one (its effects applied after commit)."""
        ...


class AttemptLoop(Protocol):
    """What a running attempt asks of the coordinator loop."""

    def finish_attempt(self, attempt: RunningAttempt, *, outcome: str, failure_type: str | None = None,
                       message: str = "", result: ImplementResult | None = None, retry_after: float | None = None,
                       commit: Any = None) -> None:
        """Hand the attempt's end to the loop (stored in its next settle transaction)."""
        ...

    def finish_unchecked(self, attempt: RunningAttempt, result: ImplementResult) -> None:
        """Git off and no checks: validating, integrating and the end, all in the next settle."""
        ...

    def advance(self, task_id: str, *phases: str) -> bool:
        """Move the task through ``phases`` in one transaction; False when it was cancelled."""
        ...

    def claim_file(self, task_id: str, path: str) -> bool:
        """Lock an undeclared file for the task (on the loop thread)."""
        ...

    async def enqueue_integration(self, attempt: RunningAttempt, title: str, result: ImplementResult,
                                  tree: str | None = None) -> None:
        ...

    def limits(self, task_id: str | None = None) -> AttemptLimits:
        ...

    def policy_pause(self, reason: str) -> None:
        """Pause dispatching for a reason the runtime found."""
        ...
