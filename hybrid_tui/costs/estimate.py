"""``hybrid-tui estimate``: forecast a mission's cost and duration before running it.

Room: costs. Reads the mission folder (through ``spec.loader``) and drives the pure
scheduling core (``hybrid_tui.core``) in virtual time: a heap of events and a clock that
jumps from one to the next, so the forecast makes the same dispatch, retry, budget and
pool decisions a real run would. Writes nothing.

The layer costs follow the design review's section 2:

- planning (L2): one planner call per issue the run plans, at the planner model, 2,000 in /
  3,000 out (the sim and replay backends plan every issue; Claude only the issues without a
  reviewed SIS; an agent CLI none: see :func:`planned_issues`);
- implementation (L3): each task's SIS token estimate at its model (hint, else implementer);
- coordination (L1): the review's 50,000 in / 20,000 out for an 18-task mission, scaled
  by the task count, at the coordinator model;
- retries: a failure rate R means a fraction R of the tasks fail, and a failing task needs
  2 retries (review 2.2.2), so the expected retry cost is sum(R x 2 x task cost).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from hybrid_tui.core import (
    AgentChanged,
    Alert,
    CancelRunning,
    PauseChanged,
    PoolTarget,
    Scheduler,
    TaskInfo,
    TaskStatus,
    TaskTransition,
)
from hybrid_tui.core.tiering import select_model
from hybrid_tui.spec.loader import MissionInvalid, load_mission
from hybrid_tui.spec.models import ModelsSection, SisTask, Usage
from hybrid_tui.vocabulary import UserError

from hybrid_tui.costs.pricing import PricingError, PricingTable, UnknownModel
from hybrid_tui.costs.report import md_table

PLANNER_USAGE = Usage(input_tokens=2_000, output_tokens=3_000)  # review 2.1, per planner call
COORDINATOR_USAGE = Usage(input_tokens=50_000, output_tokens=20_000)  # review 2.1, whole mission
COORDINATOR_REFERENCE_TASKS = 18  # the mission size the review's L1 figure is for
RETRIES_PER_FAILED_TASK = 2  # review 2.2.2
SIM_FAILURE_TYPE = "validation_failed"  # 2 immediate retries with feedback: the review's case
SWEEP_FAILURE_RATES = (0.0, 0.1, 0.2, 0.3)
SWEEP_POOL_SIZES = (4, 8, 12)


# ------------------------------------------------------------------------ layer costs


@dataclass
class LayerCosts:
    planner_model: str
    implementer_model: str
    coordinator_model: str
    issues: int
    planned_issues: int  # the issues the run plans (its planner calls)
    tasks: int
    per_planner_call: float
    planning: float
    per_task: float  # mean expected cost of one task's attempt
    implementation: float
    coordination: float
    task_costs: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.planning + self.implementation + self.coordination

    def expected_retry_cost(self, failure_rate: float) -> float:
        return sum(failure_rate * RETRIES_PER_FAILED_TASK * c for c in self.task_costs.values())


def task_model(task: SisTask, models: ModelsSection) -> str:
    """The model a real run uses for ``task`` (the core's tiering, as the coordinator does)."""
    return select_model(task, models)


def planned_issues(mission: Any) -> int:
    """How many issues a run of ``mission`` plans, as ``runtime.planning`` does for its backend:
    sim and replay replay a planning step per issue (the review's L2 layer); Claude uses a
    reviewed ``sis/<issue>.json`` as it is and plans only the issues without one; an agent CLI
    has no planner (the mission's SIS are the plan)."""
    backend = mission.config.agents.backend
    if backend == "cli":
        return 0
    if backend == "anthropic":
        reviewed = {sis.issue.id for _, sis in mission.sis}
        return sum(1 for issue in mission.issues if issue.id not in reviewed)
    return len(mission.sis) or len(mission.issues)


def layer_costs(mission: Any, table: PricingTable) -> LayerCosts:
    """Expected cost of each layer of a mission (``spec.loader.Mission``) without failures."""
    models = mission.config.models
    per_planner_call = table.cost(models.planner, PLANNER_USAGE)
    planned = planned_issues(mission)
    task_models = {t.task_id: task_model(t, models) for t in mission.tasks}
    task_costs = {t.task_id: table.expected_task_cost(t, task_models[t.task_id]) for t in mission.tasks}
    n = len(mission.tasks)
    coordination = table.cost(models.coordinator, COORDINATOR_USAGE) * n / COORDINATOR_REFERENCE_TASKS
    implementation = sum(task_costs.values())
    return LayerCosts(
        planner_model=models.planner,
        implementer_model=" + ".join(sorted(set(task_models.values()))) or models.implementer,
        coordinator_model=models.coordinator,
        issues=len(mission.issues) or len(mission.sis),
        planned_issues=planned,
        tasks=n,
        per_planner_call=per_planner_call,
        planning=per_planner_call * planned,
        per_task=implementation / n if n else 0.0,
        implementation=implementation,
        coordination=coordination,
        task_costs=task_costs,
    )


def batch_savings(mission: Any, table: PricingTable) -> dict[str, float]:
    """Dollars each task does not spend when it is in a batch but not its first task: the
    shared context (``[policies.batch] shared_context_tokens``, at most the task's own input
    estimate) is loaded once per batch, priced at the task's model's input rate. Empty when
    the mission does not batch."""
    policy = mission.config.policies.batch
    if policy is None:
        return {}
    models = mission.config.models
    return {t.task_id: table.cost(task_model(t, models),
                                  Usage(input_tokens=min(policy.shared_context_tokens, t.estimated_tokens.input)))
            for t in mission.tasks}


def mission_models(mission: Any) -> list[str]:
    models = mission.config.models
    names = [models.planner, models.implementer, models.strong, models.coordinator]
    return names + [t.model_hint for t in mission.tasks if t.model_hint]


# ------------------------------------------------------------------------- simulation


@dataclass
class SimResult:
    agents: int  # fixed pool size, or the largest the autoscaled pool reached
    failure_rate: float
    backend_latency: float
    wall_clock_seconds: float  # planning + implementation, virtual time
    planning_seconds: float
    busy_seconds: float  # summed over implementer agents
    agent_seconds: float  # summed lifetime of implementer agents
    utilisation: float  # busy / agent lifetime
    attempts: int
    failed_attempts: int
    tasks_done: int
    tasks_not_done: int
    implementation_usd: float  # every attempt, retries included
    retry_usd: float
    auto_pauses: int = 0  # failure-rate pauses (the simulated operator resumes at once)
    stopped_by: str = ""  # why tasks were left undone (budget, attention)
    # [policies.batch]: sessions of several tasks, the tasks in them, and the dollars they did
    # not spend loading the shared context again (already out of implementation_usd).
    batches: int = 0
    batched_tasks: int = 0
    batch_saving_usd: float = 0.0
    alerts: list[str] = field(default_factory=list)


def simulate(
    mission: Any,
    table: PricingTable,
    *,
    agents: int | None,
    failure_rate: float,
    backend_latency: float,
    seed: int = 0,
    approval_seconds: float = 0.0,
) -> SimResult:
    """One run of ``mission`` through the scheduling core in virtual time.

    ``agents``: a fixed pool; None autoscales between the mission's min and max
    implementers as the core's ``PoolTarget`` says. Each attempt takes its task's SIS
    duration plus ``backend_latency`` and costs its SIS token estimate; one longer than
    ``agents.attempt_timeout_seconds`` is stopped there as a ``timeout``, as a run stops it
    (paying for the part it ran). ``round(R x tasks)``
    tasks (drawn with ``seed``) fail validation twice before succeeding, the review's
    "2 retries per failed task"; the core decides what that means (retry, budget stop,
    auto-pause). A failure-rate auto-pause is resumed at once and counted. A task the
    approval gate holds is approved ``approval_seconds`` after it starts to wait.
    """
    config = mission.config
    costs = layer_costs(mission, table)
    rng = random.Random(seed)
    task_ids = [t.task_id for t in mission.tasks]
    failing = set(rng.sample(task_ids, round(failure_rate * len(task_ids)))) if task_ids else set()
    durations = {t.task_id: t.estimated_duration_minutes * 60.0 + backend_latency for t in mission.tasks}
    infos = [TaskInfo.from_sis(t, costs.task_costs[t.task_id]) for t in mission.tasks]

    # Planning: one call per issue the run plans, `planners` at a time; only the backend latency is known.
    planners = max(1, config.agents.planners)
    planning_seconds = math.ceil(costs.planned_issues / planners) * backend_latency

    pool_min, pool_max = (agents, agents) if agents else (
        config.agents.min_implementers, max(config.agents.max_implementers, config.agents.min_implementers))
    scheduler = Scheduler(
        infos,
        policies=config.policies,
        mission_budget_usd=config.budget.mission_usd,
        retry_budget_usd=config.budget.retry_usd,
        pool_min=pool_min,
        pool_max=pool_max,
        rng=random.Random(seed + 1),
    )
    run = VirtualRun(scheduler, durations, backend=config.agents.backend, now=planning_seconds,
                     task_costs=costs.task_costs, failing=failing, approval_seconds=approval_seconds,
                     attempt_timeout=config.agents.attempt_timeout_seconds,
                     batch_savings=batch_savings(mission, table))
    run.start_agents(pool_min)
    run.drive()
    stats = run.stats
    done = scheduler.counts()[TaskStatus.DONE]
    not_done = len(infos) - done
    stopped_by = ""
    if not_done:
        stops = [a for a in run.alerts if a.startswith(("budget_exhausted", "retry_budget_exhausted", "attention"))]
        stopped_by = stops[0] if stops else f"{not_done} tasks never became ready"
    return SimResult(
        agents=agents or stats["peak"],
        failure_rate=failure_rate,
        backend_latency=backend_latency,
        wall_clock_seconds=run.now,
        planning_seconds=planning_seconds,
        busy_seconds=stats["busy"],
        agent_seconds=stats["agent_seconds"],
        utilisation=stats["busy"] / stats["agent_seconds"] if stats["agent_seconds"] > 0 else 0.0,
        attempts=run.attempts,
        failed_attempts=run.failed_attempts,
        tasks_done=done,
        tasks_not_done=not_done,
        implementation_usd=stats["impl"],
        retry_usd=stats["retry"],
        auto_pauses=stats["pauses"],
        stopped_by=stopped_by,
        batches=int(stats["batches"]),
        batched_tasks=int(stats["batched_tasks"]),
        batch_saving_usd=stats["batch_saving"],
        alerts=run.alerts,
    )


class VirtualRun:
    """The scheduling core driven in virtual time: a heap of attempt ends and a clock that
    jumps to the next end or core deadline. The one simulator behind ``estimate``, the
    run's time forecast (:mod:`hybrid_tui.costs.forecast`) and ``bench`` makespans.

    ``durations``: seconds per attempt of each task; ``task_costs``: dollars per attempt;
    ``failing``: tasks whose first ``RETRIES_PER_FAILED_TASK`` attempts fail validation.
    An attempt longer than ``attempt_timeout`` is stopped there as a ``timeout`` (paying for
    the part it ran). A task the approval gate holds is approved ``approval_seconds`` after
    it starts to wait. A ``PoolTarget`` resizes the pool; a failure-rate auto-pause is
    resumed at once. A batch the core dispatched (``[policies.batch]``) is one agent doing its
    tasks one after another: each ends when those before it and itself are done, and every
    task but the first costs ``batch_savings`` less (the shared context loaded once).
    """

    def __init__(self, scheduler: Scheduler, durations: dict[str, float], *, backend: str, now: float = 0.0,
                 task_costs: dict[str, float] | None = None, failing: set[str] | frozenset[str] = frozenset(),
                 approval_seconds: float = 0.0, attempt_timeout: float = math.inf,
                 batch_savings: dict[str, float] | None = None):
        self.scheduler = scheduler
        self.durations = durations
        self.backend = backend
        self.now = now
        self.task_costs = task_costs or {}
        self.failing = failing
        self.approval_seconds = approval_seconds
        self.attempt_timeout = attempt_timeout
        self.batch_savings = batch_savings or {}
        self.batch_costs: dict[tuple[str, int], float] = {}  # a batch member's attempt -> its cost
        self.events: list[tuple[float, int, str, int]] = []  # (finish time, seq, task id, attempt)
        self.approvals: list[tuple[float, str]] = [  # (when the simulated operator approves, task id)
            (now + approval_seconds, tid) for tid in scheduler.task_ids()
            if scheduler.status(tid) is TaskStatus.AWAITING_APPROVAL]
        self._seq = itertools.count()
        self._names = itertools.count(1)
        self.running: dict[str, tuple[int, float]] = {}  # task -> (attempt, started)
        self.alive: dict[str, float] = {}  # agent -> since
        self.draining: set[str] = set()
        self.failures_so_far: dict[str, int] = {}
        self.alerts: list[str] = []
        self.attempts = self.failed_attempts = 0
        self.stats: dict[str, float] = {"busy": 0.0, "agent_seconds": 0.0, "impl": 0.0, "retry": 0.0,
                                        "pauses": 0, "peak": 0, "batches": 0, "batched_tasks": 0,
                                        "batch_saving": 0.0}

    def start_agents(self, n: int) -> None:
        for _ in range(n):
            self._add_agent()

    def _add_agent(self) -> None:
        agent_id = f"sim-{next(self._names)}"
        self.alive[agent_id] = self.now
        self.stats["peak"] = max(self.stats["peak"], len(self.alive))
        self.handle(self.scheduler.add_agent(agent_id, self.now, self.backend))

    def _resize(self, size: int) -> None:
        active = [a for a in self.alive if a not in self.draining]
        for _ in range(size - len(active)):
            self._add_agent()
        if len(active) > size:
            idle = set(self.scheduler.idle_agents())
            victims = sorted(active, key=lambda a: (a not in idle, a))[: len(active) - size]
            for agent_id in victims:
                self.draining.add(agent_id)
                self.handle(self.scheduler.remove_agent(agent_id, self.now))

    def handle(self, changes) -> None:
        now = self.now
        for change in changes:
            if isinstance(change, Alert):
                self.alerts.append(f"{change.kind}: {change.message}")
            elif isinstance(change, PoolTarget):
                self._resize(change.size)
            elif isinstance(change, AgentChanged) and change.state == "removed":
                self.stats["agent_seconds"] += now - self.alive.pop(change.agent_id)
                self.draining.discard(change.agent_id)
            elif isinstance(change, CancelRunning) and change.task_id in self.running:
                attempt, started = self.running.pop(change.task_id)
                self.stats["busy"] += now - started
                # A stopped attempt pays for the part it ran.
                full = self.durations[change.task_id]
                done_part = (now - started) / full if full else 1.0
                cost = self.task_costs.get(change.task_id, 0.0) * min(done_part, 1.0)
                self._spend(cost, attempt)
                self.handle(self.scheduler.settle_cancelled(change.task_id, attempt, cost, now))
            elif isinstance(change, PauseChanged) and change.paused:
                self.stats["pauses"] += 1
                self.handle(self.scheduler.resume(now))
            elif isinstance(change, TaskTransition) and change.new is TaskStatus.AWAITING_APPROVAL:
                heapq.heappush(self.approvals, (now + self.approval_seconds, change.task_id))

    def _spend(self, cost: float, attempt: int) -> None:
        self.stats["impl"] += cost
        if attempt > 1:
            self.stats["retry"] += cost

    def dispatch(self, durations: dict[str, float] | None = None) -> list[str]:
        """One tick and dispatch round at ``now``; ``durations`` overrides the attempt
        lengths of these dispatches (a forecast's attempts already running). Returns the
        dispatched task ids."""
        scheduler, now = self.scheduler, self.now
        while self.approvals and self.approvals[0][0] <= now:
            self.handle(scheduler.approve(heapq.heappop(self.approvals)[1], now))
        self.handle(scheduler.tick(now))
        dispatches, changes = scheduler.dispatch(now)
        self.handle(changes)
        session_end: dict[str, float] = {}  # a batch's leader -> when its tasks so far are done
        for d in dispatches:
            self.running[d.task_id] = (d.attempt, now)
            # A real attempt is stopped at agents.attempt_timeout_seconds: so is this one.
            length = min((durations or self.durations)[d.task_id], self.attempt_timeout)
            if d.batch:
                lead = d.batch[0]
                start = session_end.get(lead, now)
                session_end[lead] = start + length
                if d.task_id == lead:
                    self.attempts += 1
                    self.stats["batches"] += 1
                else:
                    saving = min(self.batch_savings.get(d.task_id, 0.0), self.task_costs.get(d.task_id, 0.0))
                    self.batch_costs[(d.task_id, d.attempt)] = self.task_costs.get(d.task_id, 0.0) - saving
                    self.stats["batch_saving"] += saving
                self.stats["batched_tasks"] += 1
                heapq.heappush(self.events, (start + length, next(self._seq), d.task_id, d.attempt))
                continue
            self.attempts += 1
            heapq.heappush(self.events, (now + length, next(self._seq), d.task_id, d.attempt))
        return [d.task_id for d in dispatches]

    def drive(self) -> float:
        """Run until every task is terminal (or nothing can happen any more); returns the
        virtual time of the last event."""
        scheduler, events = self.scheduler, self.events
        while True:
            self.dispatch()
            if scheduler.is_finished() and not self.running:
                break
            upcoming = [events[0][0]] if events else []
            if self.approvals:
                upcoming.append(self.approvals[0][0])
            deadline = scheduler.next_deadline()
            if deadline is not None:
                upcoming.append(deadline)
            if not upcoming:
                break  # nothing running and nothing due: the core will not dispatch what is left
            self.now = now = max(self.now, min(upcoming))
            while events and events[0][0] <= now:
                _, _, task_id, attempt = heapq.heappop(events)
                if self.running.get(task_id, (None, 0.0))[0] != attempt:
                    continue  # cancelled meanwhile
                _, started = self.running.pop(task_id)
                self.stats["busy"] += now - started
                cost = self.batch_costs.pop((task_id, attempt), None)
                if cost is None:
                    cost = self.task_costs.get(task_id, 0.0)
                full = self.durations[task_id]
                timed_out = full > self.attempt_timeout
                if timed_out:  # it paid for the part it ran
                    cost *= self.attempt_timeout / full
                self._spend(cost, attempt)
                if timed_out:
                    self.failed_attempts += 1
                    self.handle(scheduler.fail(task_id, "timeout", now, cost, message=(
                        f"attempt exceeded agents.attempt_timeout_seconds={self.attempt_timeout:g}")))
                elif task_id in self.failing and self.failures_so_far.get(task_id, 0) < RETRIES_PER_FAILED_TASK:
                    self.failures_so_far[task_id] = self.failures_so_far.get(task_id, 0) + 1
                    self.failed_attempts += 1
                    self.handle(scheduler.fail(task_id, SIM_FAILURE_TYPE, now, cost, message="simulated failure"))
                else:
                    self.handle(scheduler.succeed(task_id, now, cost))
        for since in self.alive.values():
            self.stats["agent_seconds"] += self.now - since
        self.alive = {a: self.now for a in self.alive}
        return self.now


# -------------------------------------------------------------------------- forecast


@dataclass
class Forecast:
    mission: str
    agents: int | None  # None: autoscaled between the mission's min and max
    failure_rate: float
    backend_latency: float
    layers: LayerCosts
    expected_retry_usd: float
    simulation: SimResult

    @property
    def total_usd(self) -> float:
        # Batching ([policies.batch]) loads the shared context once per batch: what the
        # simulated run's batches saved comes off the layer total.
        return self.layers.total - self.simulation.batch_saving_usd

    @property
    def total_with_retries_usd(self) -> float:
        return self.total_usd + self.expected_retry_usd

    def to_dict(self) -> dict[str, Any]:
        layers = self.layers
        return {
            "mission": self.mission,
            "agents": self.agents,
            "failure_rate": self.failure_rate,
            "backend_latency_seconds": self.backend_latency,
            "issues": layers.issues,
            "tasks": layers.tasks,
            "cost": {
                "planning": {"model": layers.planner_model, "calls": layers.planned_issues,
                             "per_call_usd": layers.per_planner_call, "usd": layers.planning},
                "implementation": {"model": layers.implementer_model, "tasks": layers.tasks,
                                   "per_task_usd": layers.per_task, "usd": layers.implementation},
                "coordination": {"model": layers.coordinator_model, "usd": layers.coordination},
                "batching": {"batches": self.simulation.batches, "tasks": self.simulation.batched_tasks,
                             "saving_usd": self.simulation.batch_saving_usd},
                "total_usd": self.total_usd,
                "expected_retry_usd": self.expected_retry_usd,
                "total_with_retries_usd": self.total_with_retries_usd,
            },
            "task_costs_usd": layers.task_costs,
            "simulation": asdict(self.simulation),
        }


def forecast(
    mission: Any, table: PricingTable, *, agents: int | None, failure_rate: float, backend_latency: float, seed: int = 0,
    approval_seconds: float = 0.0,
) -> Forecast:
    layers = layer_costs(mission, table)
    sim = simulate(
        mission, table, agents=agents, failure_rate=failure_rate, backend_latency=backend_latency, seed=seed,
        approval_seconds=approval_seconds,
    )
    return Forecast(
        mission=mission.name,
        agents=agents,
        failure_rate=failure_rate,
        backend_latency=backend_latency,
        layers=layers,
        expected_retry_usd=layers.expected_retry_cost(failure_rate),
        simulation=sim,
    )


def sweep(mission: Any, table: PricingTable, *, backend_latency: float, seed: int = 0) -> list[Forecast]:
    return [
        forecast(mission, table, agents=n, failure_rate=r, backend_latency=backend_latency, seed=seed)
        for r in SWEEP_FAILURE_RATES
        for n in SWEEP_POOL_SIZES
    ]


# ---------------------------------------------------------------------------- output


def _usd(value: float) -> str:
    """$2.97, $0.165, $0.00425: cents for large sums, up to five decimals for per-call prices."""
    if abs(value) >= 10:
        return f"${value:,.2f}"
    text = f"{value:.5f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _hms(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _pool(f: Forecast) -> str:
    if f.agents:
        return f"pool of {f.agents} implementers"
    return f"autoscaled pool (peak {f.simulation.agents} implementers)"


def render_text(main: Forecast, swept: list[Forecast] | None = None) -> str:
    layers, sim = main.layers, main.simulation
    out = [
        f"# Forecast: {main.mission}",
        "",
        f"{layers.tasks} tasks in {layers.issues} issues; {_pool(main)}; "
        f"failure rate {main.failure_rate * 100:.0f} %; backend latency {main.backend_latency:g} s",
        "",
        md_table(
            ["layer", "model", "calls", "per call", "cost"],
            [
                ["planning (L2)", layers.planner_model, layers.planned_issues, _usd(layers.per_planner_call), _usd(layers.planning)],
                ["implementation (L3)", layers.implementer_model, layers.tasks, _usd(layers.per_task),
                 _usd(layers.implementation)],
                ["coordination (L1)", layers.coordinator_model, 1, "", _usd(layers.coordination)],
                *([[f"batching ({sim.batched_tasks} tasks in {sim.batches} attempts)", "", "", "",
                    f"-{_usd(sim.batch_saving_usd)}"]] if sim.batches else []),
                ["**total**", "", "", "", f"**{_usd(main.total_usd)}**"],
                [f"expected retries ({main.failure_rate * 100:.0f} %)", "", "", "", _usd(main.expected_retry_usd)],
                ["**total with retries**", "", "", "", f"**{_usd(main.total_with_retries_usd)}**"],
            ],
            "llrrr",
        ),
        "",
        f"Simulated run: wall clock {_hms(sim.wall_clock_seconds)} (planning {_hms(sim.planning_seconds)}), "
        f"agent utilisation {sim.utilisation * 100:.0f} %, {sim.attempts} attempts, "
        f"{sim.tasks_done}/{layers.tasks} tasks done, implementation incl. retries {_usd(sim.implementation_usd)} "
        f"(retries {_usd(sim.retry_usd)}).",
        "",
        "Coordination (L1) is the design review's LLM coordinator, kept so forecasts compare with it; "
        "hybrid-tui's own coordinator is code and makes no model calls, so a real run spends "
        f"{_usd(layers.coordination)} less than this total.",
    ]
    if sim.stopped_by:
        out.append(f"The run would stop early: {sim.stopped_by}")
    if swept:
        out += [
            "",
            "## Sweep",
            "",
            md_table(
                ["failure rate", "agents", "expected total", "simulated total", "wall clock", "utilisation", "done"],
                [
                    [f"{f.failure_rate * 100:.0f} %", f.agents, _usd(f.total_with_retries_usd),
                     _usd(f.layers.planning + f.layers.coordination + f.simulation.implementation_usd),
                     _hms(f.simulation.wall_clock_seconds), f"{f.simulation.utilisation * 100:.0f} %",
                     f"{f.simulation.tasks_done}/{f.layers.tasks}"]
                    for f in swept
                ],
                "rrrrrrr",
            ),
        ]
    return "\n".join(out) + "\n"


def cmd_estimate(args: argparse.Namespace) -> int:
    if not 0.0 <= args.failure_rate <= 1.0:
        raise UserError(f"--failure-rate {args.failure_rate}: must be between 0 and 1")
    if args.backend_latency < 0:
        raise UserError(f"--backend-latency {args.backend_latency}: must not be negative")
    if not 0 <= args.approval_minutes < float("inf"):
        raise UserError(f"--approval-minutes {args.approval_minutes}: must be a non-negative number")
    if args.agents is not None and args.agents < 1:
        raise UserError(f"--agents {args.agents}: need at least one agent")
    try:
        mission = load_mission(args.mission)
    except MissionInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        raise UserError(f"{args.mission}: mission is invalid ({count} problem{'s' if count != 1 else ''})") from None
    try:
        table = PricingTable.load(mission.config.pricing or None)
    except PricingError as exc:
        raise UserError(str(exc)) from None
    unknown = table.check_models(mission_models(mission))
    if unknown:
        raise UserError("; ".join(unknown))
    agents = args.agents  # None: autoscale like a real run
    try:
        main = forecast(mission, table, agents=agents, failure_rate=args.failure_rate,
                        backend_latency=args.backend_latency, seed=args.seed,
                        approval_seconds=args.approval_minutes * 60.0)
        swept = sweep(mission, table, backend_latency=args.backend_latency, seed=args.seed) if args.sweep else None
    except UnknownModel as exc:
        raise UserError(str(exc)) from None
    if args.json:
        data = main.to_dict()
        if swept is not None:
            data["sweep"] = [f.to_dict() | {"task_costs_usd": None} for f in swept]
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(main, swept))
    return 0
