"""When a running mission will finish: the ``estimate`` simulator started from the run's state.

Room: costs. Pure computation (no store, no clock: ``now`` is passed in). A snapshot of the
live :class:`~hybrid_tui.core.Scheduler` (:func:`snapshot`, taken on the loop's thread,
cheap) is replayed by :class:`~hybrid_tui.costs.estimate.VirtualRun` on a fresh scheduler
of the same policies (:func:`forecast_time`, may run in a worker thread):

- tasks still running keep their agents and take what is left of their estimate;
- queued tasks take their estimate (raised by long failed attempts) scaled by the
  backend's observed speed; a task in backoff waits for its deadline first;
- done tasks are gone, and tasks that cannot finish without an operator (failed, blocked,
  cancelled) are left out;
- the pool is the run's current one.

The expected finish is the run with every duration at its estimate; the range is the
fastest and slowest of ``samples`` runs whose durations are drawn around their estimates
(lognormal, the spread the run observed so far, else :data:`DEFAULT_SPREAD`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from hybrid_tui.core import ACTIVE, DEAD, Scheduler, TaskInfo, TaskStatus
from hybrid_tui.spec.models import PoliciesSection

from hybrid_tui.costs.estimate import VirtualRun

DEFAULT_SPREAD = 0.5  # lognormal sigma of actual / estimate before the run has measured its own
MAX_SAMPLES = 8
SAMPLED_TASKS = 12_000  # sampled runs x tasks left stays under this (big missions: fewer samples)
MIN_SAMPLES = 2
RUNNING_FLOOR = 0.1  # an attempt past its estimate is expected to need this fraction of it again


@dataclass(frozen=True, slots=True)
class TaskLeft:
    info: TaskInfo  # dependencies cut to the tasks left; estimate as the run re-derived it
    seconds: float  # expected seconds of (the rest of) its attempt
    running: bool
    wait_seconds: float = 0.0  # backoff left before it may run again


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    now: float
    agents: int
    backend: str
    policies: PoliciesSection
    tasks: tuple[TaskLeft, ...]
    spread: float
    speed: float


@dataclass(frozen=True, slots=True)
class TimeForecast:
    made_at: float
    remaining_seconds: float  # expected, every duration at its estimate
    low_seconds: float  # fastest of the sampled runs
    high_seconds: float  # slowest of the sampled runs
    tasks_left: int
    speed: float  # observed seconds per estimated second
    spread: float
    samples: int

    @property
    def finish_at(self) -> float:
        return self.made_at + self.remaining_seconds


def snapshot(scheduler: Scheduler, now: float, *, agents: int, backend: str) -> RunSnapshot:
    """What the forecast needs of the live scheduler, as plain values."""
    speed = scheduler.speed(backend)
    # Views of the tasks left only: a refresh near the end of a big run would otherwise build
    # one for every task it ever had (on the loop's thread).
    left_ids = [tid for tid in scheduler.task_ids()
                if (status := scheduler.status(tid)) is not TaskStatus.DONE and status not in DEAD]
    views = {tid: scheduler.task(tid) for tid in left_ids}
    tasks: list[TaskLeft] = []
    for tid, view in views.items():
        expected = view.estimate_minutes * 60.0 * speed
        running = view.status in ACTIVE
        wait = 0.0
        if running and view.started_at is not None:
            expected = max(expected - (now - view.started_at), RUNNING_FLOOR * expected)
        elif view.status is TaskStatus.RETRY_WAIT and view.retry_at is not None:
            wait = max(view.retry_at - now, 0.0)
        info = dataclasses.replace(view.info, estimated_duration_minutes=view.estimate_minutes,
                                   dependencies=() if running else
                                   tuple(d for d in view.info.dependencies if d in views))
        tasks.append(TaskLeft(info, expected, running, wait))
    spread = scheduler.duration_spread()
    return RunSnapshot(now, max(agents, 1), backend, scheduler.policies, tuple(tasks),
                       DEFAULT_SPREAD if spread is None else spread, speed)


def sample_count(tasks_left: int) -> int:
    """How many sampled runs a forecast of ``tasks_left`` tasks makes for its range."""
    return min(MAX_SAMPLES, max(MIN_SAMPLES, SAMPLED_TASKS // max(tasks_left, 1)))


def _simulate(snap: RunSnapshot, durations: dict[str, float]) -> float:
    """Seconds from ``snap.now`` until every task left is done (or nothing more can run)."""
    # Budgets are the operator's to raise, approvals theirs to give: the forecast assumes
    # both come (it forecasts the work, not the operator).
    policies = snap.policies.model_copy(update={"approve": []})
    running = [t for t in snap.tasks if t.running]
    pool = max(snap.agents, len(running))
    scheduler = Scheduler([t.info for t in running], policies=policies, mission_budget_usd=1e18,
                          retry_budget_usd=1e18, pool_min=pool, pool_max=pool, rng=random.Random(0))
    run = VirtualRun(scheduler, durations, backend=snap.backend, now=snap.now)
    run.start_agents(pool)
    run.dispatch()  # the attempts in flight first, each on its own agent, for what is left of it
    scheduler.add_tasks([t.info for t in snap.tasks if not t.running], snap.now)
    return run.drive() - snap.now


def forecast_time(snap: RunSnapshot, *, seed: int = 0, samples: int | None = None) -> TimeForecast:
    """The expected remaining time and its range (see the module docstring)."""
    left = len(snap.tasks)
    expected = {t.info.task_id: t.seconds + t.wait_seconds for t in snap.tasks}
    remaining = _simulate(snap, expected) if left else 0.0
    if samples is None:
        samples = sample_count(left)
    rng = random.Random(seed)
    outcomes = [remaining]
    for _ in range(samples if left else 0):
        drawn = {t.info.task_id: t.seconds * rng.lognormvariate(0.0, snap.spread) + t.wait_seconds
                 for t in snap.tasks}
        outcomes.append(_simulate(snap, drawn))
    return TimeForecast(snap.now, remaining, min(outcomes), max(outcomes), left, snap.speed, snap.spread,
                        samples if left else 0)
