"""Scheduling overhead of the real runtime (room: bench; drives runtime + store + core, git off).

A seeded random DAG (``core_bench.random_dag``) becomes an in-memory mission; a run of it
is created on a SQLite file and the REAL ``runtime.Coordinator`` drives it with ``sim``
agents that finish instantly (pace 0, no failures, git off). Every change goes through the
store exactly as in a real run (one transaction per dispatch round and per attempt step,
events, version bumps).

Figures: wall and CPU time per task lifecycle (ready -> running -> validating ->
integrating -> done), and the dependency-to-dispatch latency read from the stored
``task.status`` events: for each task with dependencies, the time from its last
dependency's ``-> done`` to its own ``-> running``. Side by side on the same DAG: Dask's
threaded scheduler running no-op tasks, the scheduling core alone (no store), and a plain
topological walk (the floor).
"""

from __future__ import annotations

import gc
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from hybrid_tui.core import TaskInfo
from hybrid_tui.spec.loader import Issue, Mission
from hybrid_tui.spec.models import (
    AgentsSection,
    BudgetSection,
    IntentOp,
    MissionFile,
    MissionSection,
    PoliciesSection,
    Sis,
    SisIssue,
    SisTask,
)

from . import core_bench
from .common import Figure, Timer, median, percentile

RUN_ID = "bench-run"
TASK_BUDGET_MS = 0.40  # DESIGN.md "Overhead guard": runtime + store CPU per task at 10,000 tasks
DISPATCH_LATENCY_BUDGET_MS = 1.0
DISPATCH_BATCH = PoliciesSection().dispatch_batch


def mission_of(tasks: list[TaskInfo], root: Path, agents: int) -> Mission:
    """An in-memory mission holding ``tasks`` (one issue), pool pinned at ``agents``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "repo").mkdir(exist_ok=True)
    config = MissionFile(
        mission=MissionSection(name="bench", repo="repo"),
        agents=AgentsSection(min_implementers=agents, max_implementers=agents, backend="sim"),
        budget=BudgetSection(mission_usd=1e9, retry_usd=1e9),
    )
    specs = [
        SisTask(
            task_id=t.task_id,
            title=f"task {t.task_id}",
            priority=t.priority,
            domain=t.domain,
            dependencies=list(t.dependencies),
            estimated_duration_minutes=t.estimated_duration_minutes,
            file_operations=[IntentOp(op="intent", path=f, intent="change it") for f in t.files],
        )
        for t in tasks
    ]
    sis = Sis(issue=SisIssue(id="bench", title="benchmark DAG"), tasks=specs)
    return Mission(
        root=root,
        mission_file=root / "mission.toml",
        config=config,
        repo_path=root / "repo",
        issues=[Issue(id="bench", title="benchmark DAG", body="", path=root / "issues" / "bench.md")],
        sis=[(root / "sis" / "bench.json", sis)],
        tasks=specs,
    )


def create_bench_run(mission: Mission, run_dir: Path):
    """A run of ``mission`` in ``run_dir`` (SQLite file, git off), as ``start_run --no-git`` makes it."""
    from hybrid_tui.store.db import open_store
    from hybrid_tui.store.runs import create_run, init_run_dir, state_db_path

    init_run_dir(run_dir)
    store = open_store(state_db_path(run_dir))
    create_run(store, mission, run_id=RUN_ID, run_dir=run_dir, repo_path=mission.repo_path,
               mission_branch="", base_branch="", backend="sim")
    return store


@dataclass
class RuntimeResult:
    tasks: int
    wall: float
    cpu: float
    exit_code: int
    latencies_ms: list[float] = field(default_factory=list)
    transactions: int = 0

    @property
    def wall_ms_per_task(self) -> float:
        return self.wall / self.tasks * 1e3

    @property
    def cpu_ms_per_task(self) -> float:
        return self.cpu / self.tasks * 1e3


class TimedSim:
    """The ``sim`` implementer, noting when each attempt's agent finished (wall clock, as the
    stored events): a dependency "finishes" when its agent returns, not when the coordinator
    gets round to storing that, so the latency below includes the group commit's wait."""

    def __init__(self, seed: int):
        from hybrid_tui.agents.sim import SimImplementer

        self.inner = SimImplementer(seed=seed, pace=0.0, git=False)
        self.name = self.inner.name
        self.finished: dict[str, float] = {}

    async def implement(self, request):
        result = await self.inner.implement(request)
        self.finished[request.task.task_id] = time.time()
        return result


def dispatch_latencies(run_id: str, tasks: list[TaskInfo], finished: dict[str, float]) -> list[float]:
    """ms from each task's last dependency finishing (its agent returned) to its own first
    ``-> running`` (the stored event)."""
    from hybrid_tui.store import models as m

    started: dict[str, float] = {}
    query = (
        m.Event.select(m.Event.task_id, m.Event.ts, m.Event.data_json)
        .where((m.Event.run == run_id) & (m.Event.kind == "task.status"))
        .order_by(m.Event.seq)
        .tuples()
    )
    for task_id, ts, data_json in query:
        if json.loads(data_json).get("new") == "running":
            started.setdefault(task_id, ts)  # the first dispatch
    out = []
    for t in tasks:
        if t.dependencies and t.task_id in started:
            out.append((started[t.task_id] - max(finished[d] for d in t.dependencies)) * 1e3)
    return out


def run_runtime(tasks: list[TaskInfo], agents: int, seed: int, workdir: Path, *, profile: Path | None = None,
                capture=None) -> RuntimeResult:
    """Drive the real coordinator over ``tasks`` to completion; time ``Coordinator.run``.

    A small DAG runs first, untimed, in the same process: the event loop's and the runtime's
    modules are imported and warm before the timer starts, as Dask's are (its threads too, see
    :func:`run_dask`). ``capture``: a ``store_bench.StatementCapture`` to record every SQL
    statement of the run; ``workdir / "before.db"`` then keeps a copy of the store as it was
    before the run (see :func:`sql_floor`)."""
    _warm_up(agents, seed)
    return _drive(tasks, agents, seed, workdir, profile=profile, capture=capture)


_warmed: set[int] = set()


def _warm_up(agents: int, seed: int) -> None:
    if agents in _warmed:
        return
    _warmed.add(agents)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-warm-") as tmp:
        _drive(core_bench.random_dag(4 * agents, seed + 1), agents, seed, Path(tmp))


def _drive(tasks: list[TaskInfo], agents: int, seed: int, workdir: Path, *, profile: Path | None = None,
           capture=None) -> RuntimeResult:
    from hybrid_tui.runtime.coordinator import Coordinator

    mission = mission_of(tasks, workdir / "mission", agents)
    store = create_bench_run(mission, workdir / "run")
    if capture is not None:
        import shutil

        from hybrid_tui.store.db import open_store
        from hybrid_tui.store.runs import state_db_path

        store.close()  # checkpointed: the file alone holds the run as created
        shutil.copyfile(state_db_path(workdir / "run"), workdir / "before.db")
        store = open_store(state_db_path(workdir / "run"), create=False)
        capture.install(store)
    try:
        implementer = TimedSim(seed)
        coordinator = Coordinator(store, RUN_ID, mission, backend=(None, implementer), git=False, agents=agents,
                                  seed=seed, rng=random.Random(seed))
        profiler = None
        if profile is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        gc.collect()
        with Timer() as timer:
            code = anyio.run(coordinator.run)
        if profiler is not None:
            profiler.stop()
            profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        from hybrid_tui.store import models as m

        version = m.Run.get_by_id(RUN_ID).version
        latencies = dispatch_latencies(RUN_ID, tasks, implementer.finished)
        return RuntimeResult(len(tasks), timer.wall, timer.cpu, code, latencies, transactions=version)
    finally:
        store.close()


def sql_floor(tasks: list[TaskInfo], agents: int, seed: int) -> tuple[Timer, int]:
    """What the run's durable writes cost in SQLite alone: every statement a run of ``tasks``
    issues (captured at the store's cursors during a second, untimed run), replayed by the raw
    ``sqlite3`` module on a copy of the store as it was before that run. Returns the replay's
    timer and the number of rows it wrote or statements it ran (each row of a batch counted)."""
    from .store_bench import StatementCapture, replay_raw

    capture = StatementCapture()
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-floor-") as tmp:
        run_runtime(tasks, agents, seed, Path(tmp), capture=capture)
        rows = sum(len(params) if isinstance(params, list) else 1 for _, params in capture.statements)
        return replay_raw(Path(tmp) / "before.db", capture.statements), rows


def run_dask(tasks: list[TaskInfo], agents: int) -> Timer:
    """Dask's threaded scheduler on the same DAG, no-op tasks (dict graph, ``dask.threaded.get``)."""
    import dask.threaded

    def noop(*_args):
        return None

    graph = {t.task_id: (noop, *t.dependencies) for t in tasks}
    keys = [t.task_id for t in tasks]
    warm = {f"warm{i}": (noop,) for i in range(4 * agents)}
    dask.threaded.get(warm, list(warm), num_workers=agents)  # its pool and threads start untimed
    gc.collect()
    with Timer() as timer:
        dask.threaded.get(graph, keys, num_workers=agents)
    return timer


def run_floor(tasks: list[TaskInfo]) -> Timer:
    """A plain Python loop walking the DAG in topological order: the least any scheduler does."""
    with Timer() as timer:
        core_bench.run_baseline(tasks)
    return timer


def run_core_only(tasks: list[TaskInfo], agents: int, seed: int) -> Timer:
    """The pure scheduling core, no store (what ``core_bench`` measures)."""
    with Timer() as timer:
        core_bench.run_core(tasks, agents, seed)
    return timer


@dataclass
class SchedulingRun:
    tasks: int
    runtime: RuntimeResult
    dask: Timer
    floor: Timer
    core: Timer
    chain: RuntimeResult | None = None
    fanout: RuntimeResult | None = None
    sql: Timer | None = None  # the run's SQL replayed by raw sqlite3 (sql_floor)
    sql_statements: int = 0


def chain_latency(n: int, seed: int) -> RuntimeResult:
    """A chain (each task depends on the one before): exactly one task is ready at a time,
    so dependency -> dispatch is the coordinator's pure reaction time, no queueing."""
    chain = [TaskInfo(f"C{i:05}", "MEDIUM", "api", (f"C{i - 1:05}",) if i else (), (f"src/chain{i}.py",), 5.0, 0.01)
             for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-chain-") as tmp:
        return run_runtime(chain, 4, seed, Path(tmp))


def fanout_latency(width: int, seed: int) -> RuntimeResult:
    """One task with ``width`` dependents and as many agents: its end readies them all at once,
    so dependency -> dispatch is the time to store that end and start every dependent."""
    root = TaskInfo("F0000", "HIGH", "api", (), ("src/root.py",), 5.0, 0.01)
    leaves = [TaskInfo(f"F{i:04}", "MEDIUM", "api", ("F0000",), (f"src/leaf{i}.py",), 5.0, 0.01)
              for i in range(1, width + 1)]
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-fanout-") as tmp:
        return run_runtime([root, *leaves], width, seed, Path(tmp))


def measure(n: int, agents: int, seed: int, *, profile: Path | None = None, baselines: bool = True) -> SchedulingRun:
    """``baselines=False`` measures Dask alone next to the runtime, not the walk, the core and
    the SQL floor (the scaling benchmark's 50k run, where Dask alone takes ~50 s)."""
    tasks = core_bench.random_dag(n, seed)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-") as tmp:
        runtime = run_runtime(tasks, agents, seed, Path(tmp), profile=profile)
    if runtime.exit_code != 0:
        raise RuntimeError(f"the coordinator exited {runtime.exit_code} on the benchmark DAG")
    dask_t = run_dask(tasks, agents)
    if not baselines:
        return SchedulingRun(n, runtime, dask_t, Timer(), Timer())
    floor = min((run_floor(tasks) for _ in range(3)), key=lambda t: t.wall)
    core = run_core_only(tasks, agents, seed)
    sql, statements = sql_floor(tasks, agents, seed)
    return SchedulingRun(n, runtime, dask_t, floor, core, sql=sql, sql_statements=statements)


def measure_with_chain(n: int, agents: int, seed: int, *, chain: int = 200, profile: Path | None = None) -> SchedulingRun:
    result = measure(n, agents, seed, profile=profile)
    result.chain = chain_latency(chain, seed)
    result.fanout = fanout_latency(agents - 1, seed)
    return result


def figures(result: SchedulingRun, agents: int, *, bench: str = "scheduling") -> list[Figure]:
    n = result.tasks
    rt = result.runtime
    per = lambda seconds: seconds / n * 1e3  # noqa: E731  (ms per task)
    label = f"{n:,} tasks, {agents} agents"
    lat = rt.latencies_ms
    return [
        Figure(bench, f"runtime+store per task, wall ({label})", rt.wall_ms_per_task, "ms/task",
               per(result.dask.wall), "dask threaded, wall",
               note=f"{rt.transactions / n:.1f} store transactions per task; core alone {per(result.core.cpu):.3f} ms/task CPU"),
        Figure(bench, "runtime+store per task, CPU", rt.cpu_ms_per_task, "ms/task",
               per(result.dask.cpu), "dask threaded, CPU", TASK_BUDGET_MS, "<= 0.40 ms/task"),
        Figure(bench, "runtime+store vs dask (wall ratio)", rt.wall_ms_per_task, "ms/task",
               per(result.dask.wall), "dask threaded, wall",
               note="shown, not a budget: Dask persists nothing, and every state change here is stored first"),
    ] + ([] if result.sql is None else [
        Figure(bench, "the run's SQL alone, replayed by raw sqlite3, CPU", per(result.sql.cpu), "ms/task",
               per(result.dask.cpu), "dask threaded, CPU",
               note=f"every task, attempt, agent, lock and event row the run stores ({result.sql_statements / n:.1f} "
                    "statements a task, each row of a batch counted; one commit per loop turn), executed by the "
                    "sqlite3 module with no Python around it: what durability costs in SQLite alone, which Dask "
                    "does not pay"),
    ]) + [
        Figure(bench, "runtime+store vs plain DAG walk (CPU)", rt.cpu_ms_per_task, "ms/task",
               per(result.floor.cpu), "topological walk, CPU"),
        Figure(bench, "dask threaded vs plain DAG walk (CPU)", per(result.dask.cpu), "ms/task",
               per(result.floor.cpu), "topological walk, CPU"),
        Figure(bench, "scheduling core alone (no store), CPU", per(result.core.cpu), "ms/task",
               per(result.floor.cpu), "topological walk, CPU"),
        Figure(bench, f"dependency -> dispatch, random DAG, median ({len(lat):,} edges)", median(lat), "ms",
               note="on the random DAG a readied task also waits for a free agent and for its files' locks "
                    "(queueing, not reaction time): shown, not held to the budget; the chain and fan-out rows are"),
        Figure(bench, "dependency -> dispatch, random DAG, p99", percentile(lat, 99), "ms"),
    ] + ([] if result.chain is None else [
        Figure(bench, f"dependency -> dispatch, {result.chain.tasks}-task chain, median",
               median(result.chain.latencies_ms), "ms", budget=DISPATCH_LATENCY_BUDGET_MS, budget_text="<= 1 ms"),
        Figure(bench, f"dependency -> dispatch, {result.chain.tasks}-task chain, p99",
               percentile(result.chain.latencies_ms, 99), "ms", budget=DISPATCH_LATENCY_BUDGET_MS,
               budget_text="<= 1 ms"),
    ]) + ([] if result.fanout is None else [
        Figure(bench, f"dependency -> dispatch, fan-out to {result.fanout.tasks - 1}, first dependent",
               min(result.fanout.latencies_ms, default=0.0), "ms", budget=DISPATCH_LATENCY_BUDGET_MS,
               budget_text="<= 1 ms"),
        Figure(bench, f"dependency -> dispatch, fan-out to {result.fanout.tasks - 1}, last dependent",
               max(result.fanout.latencies_ms, default=0.0), "ms",
               note=f"dispatch is paced at policies.dispatch_batch ({DISPATCH_BATCH}) new attempts per loop turn, each "
                    f"turn one commit: the last of {result.fanout.tasks - 1} dependents starts "
                    f"{-(-(result.fanout.tasks - 1) // DISPATCH_BATCH) - 1} turns after the first"),
    ])


def details_of(result: SchedulingRun, agents: int, seed: int) -> dict:
    lat = result.runtime.latencies_ms
    return {
        "tasks": result.tasks,
        "agents": agents,
        "seed": seed,
        "runtime_wall_s": result.runtime.wall,
        "runtime_cpu_s": result.runtime.cpu,
        "store_transactions": result.runtime.transactions,
        "dask_wall_s": result.dask.wall,
        "dask_cpu_s": result.dask.cpu,
        "floor_cpu_s": result.floor.cpu,
        "core_cpu_s": result.core.cpu,
        "sql_floor_cpu_s": None if result.sql is None else result.sql.cpu,
        "sql_statements": result.sql_statements,
        "latency_ms": {"median": median(lat), "p90": percentile(lat, 90), "p99": percentile(lat, 99),
                       "max": max(lat, default=0.0)},
        "chain_latency_ms": None if result.chain is None else result.chain.latencies_ms,
        "fanout_latency_ms": None if result.fanout is None else result.fanout.latencies_ms,
    }


def run(quick: bool = False, *, agents: int = 64, seed: int = 1, tasks: int | None = None,
        profile: Path | None = None) -> tuple[list[Figure], dict]:
    n = tasks or (300 if quick else 10_000)
    result = measure_with_chain(n, agents, seed, chain=50 if quick else 200, profile=profile)
    return figures(result, agents), details_of(result, agents, seed)


if __name__ == "__main__":
    import argparse

    from .common import render_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument text profile of the runtime run here")
    args = parser.parse_args()
    figs, details = run(tasks=args.tasks, agents=args.agents, seed=args.seed, profile=args.profile)
    print(render_table(figs))
    print(json.dumps(details, indent=1))
