"""Mission makespan: the project's scheduler vs a critical-path list scheduler vs the lower
bound (room: bench; drives hybrid_tui.core through the ``estimate`` simulator, no I/O).

Seeded random mission DAGs of four families (120 tasks, lognormal durations with a median
of 10 minutes, all priorities equal, 8 agents):

- ``layered``: 8 layers of 15 tasks, each depending on 1-3 tasks of the layer before;
- ``chains``: two chains of 25 tasks and 70 independent tasks;
- ``wide``: each task depends on 0-3 random earlier tasks (random fan-in);
- ``shared-files``: layered, and each task declares 1-2 of 30 shared files (file locks).

Each DAG is run (virtual time, durations known exactly) by the real core
(``costs.estimate.VirtualRun``: the simulator behind ``hybrid-tui estimate`` and the run's
forecast) under the default priority and under ``mode = "review"``, and by a plain
critical-path list scheduler (ready tasks by longest remaining path, file locks respected,
written here from its textbook definition). Figures are makespan / lower bound, median
over the seeds; lower bound = max(critical path, total work / agents, the busiest file's
total work). DESIGN.md: the default within 3 % of the list scheduler's median, no worse
where files contend.

    .venv/bin/python -m bench.makespan [--seeds N] [--tasks N] [--agents N]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
from dataclasses import dataclass

from hybrid_tui.core import Scheduler, TaskInfo
from hybrid_tui.costs.estimate import VirtualRun
from hybrid_tui.spec.models import PoliciesSection, PriorityWeights

from .common import Figure, median, render_table

FAMILIES = ("layered", "chains", "wide", "shared-files")
MEDIAN_MINUTES = 10.0
SIGMA = 0.6  # lognormal spread of the durations
SHARED_FILES = 30
MAKESPAN_BUDGET = 1.03  # default / critical-path list, median


def random_mission(family: str, n: int, seed: int) -> list[TaskInfo]:
    """A seeded DAG of ``family`` with ``n`` tasks (lognormal estimates, median 10 min)."""
    rng = random.Random(f"{family}:{seed}")

    def minutes() -> float:
        return MEDIAN_MINUTES * rng.lognormvariate(0.0, SIGMA)

    deps: list[tuple[str, ...]] = []
    if family in ("layered", "shared-files"):
        width = max(n // 8, 1)
        for i in range(n):
            layer = i // width
            before = range((layer - 1) * width, layer * width) if layer else range(0)
            deps.append(tuple(f"t{j:03}" for j in rng.sample(before, min(len(before), rng.randint(1, 3)))))
    elif family == "chains":
        chain = max(n * 25 // 120, 1)
        for i in range(n):
            deps.append((f"t{i - 1:03}",) if 0 < i < chain or chain < i < 2 * chain else ())
    elif family == "wide":
        for i in range(n):
            deps.append(tuple(f"t{j:03}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))))
    else:
        raise ValueError(f"unknown DAG family {family!r} ({', '.join(FAMILIES)})")
    files = [f"src/shared{k:02}.py" for k in range(SHARED_FILES)]
    return [
        TaskInfo(f"t{i:03}", "MEDIUM", "general", deps[i],
                 tuple(rng.sample(files, rng.randint(1, 2))) if family == "shared-files" else (),
                 minutes())
        for i in range(n)
    ]


def remaining_paths(tasks: list[TaskInfo]) -> dict[str, float]:
    """Each task's duration plus the longest chain of dependents after it (tasks are in
    topological order)."""
    dependents: dict[str, list[str]] = {t.task_id: [] for t in tasks}
    for t in tasks:
        for d in t.dependencies:
            dependents[d].append(t.task_id)
    paths: dict[str, float] = {}
    for t in reversed(tasks):
        paths[t.task_id] = t.estimated_duration_minutes + max((paths[d] for d in dependents[t.task_id]), default=0.0)
    return paths


def lower_bound(tasks: list[TaskInfo], agents: int) -> float:
    """Minutes no schedule can beat: the critical path, the work spread over every agent,
    the work of the busiest file (its tasks never overlap)."""
    per_file: dict[str, float] = {}
    for t in tasks:
        for f in t.files:
            per_file[f] = per_file.get(f, 0.0) + t.estimated_duration_minutes
    return max(max(remaining_paths(tasks).values()), sum(t.estimated_duration_minutes for t in tasks) / agents,
               max(per_file.values(), default=0.0))


def critical_path_list(tasks: list[TaskInfo], agents: int) -> float:
    """Makespan (minutes) of the textbook list scheduler: whenever an agent is free, start
    the ready task with the longest remaining path whose files are all free."""
    paths = remaining_paths(tasks)
    by_id = {t.task_id: t for t in tasks}
    unmet = {t.task_id: len(set(t.dependencies)) for t in tasks}
    dependents: dict[str, list[str]] = {t.task_id: [] for t in tasks}
    for t in tasks:
        for d in set(t.dependencies):
            dependents[d].append(t.task_id)
    ready = {tid for tid, n in unmet.items() if n == 0}
    locked: set[str] = set()
    running: list[tuple[float, str]] = []
    now, free, done = 0.0, agents, 0
    while done < len(tasks):
        for tid in sorted(ready, key=lambda x: (-paths[x], x)):
            if not free:
                break
            files = by_id[tid].files
            if locked.intersection(files):
                continue
            ready.discard(tid)
            locked.update(files)
            free -= 1
            heapq.heappush(running, (now + by_id[tid].estimated_duration_minutes, tid))
        now, tid = heapq.heappop(running)
        finished = [tid]
        while running and running[0][0] <= now:
            finished.append(heapq.heappop(running)[1])
        for tid in finished:
            done += 1
            free += 1
            locked.difference_update(by_id[tid].files)
            for d in dependents[tid]:
                unmet[d] -= 1
                if unmet[d] == 0:
                    ready.add(d)
    return now


def hybrid_makespan(tasks: list[TaskInfo], agents: int, mode: str) -> float:
    """Makespan (minutes) of the project's scheduling core under priority ``mode``, driven
    by the ``estimate`` simulator with a fixed pool of ``agents``."""
    policies = PoliciesSection(priority=PriorityWeights(mode=mode), lock_ttl_seconds=1e9)
    scheduler = Scheduler(tasks, policies=policies, mission_budget_usd=1e9, retry_budget_usd=1e9,
                          pool_min=agents, pool_max=agents, rng=random.Random(0))
    run = VirtualRun(scheduler, {t.task_id: t.estimated_duration_minutes * 60.0 for t in tasks}, backend="sim")
    run.start_agents(agents)
    end = run.drive()
    if not scheduler.is_finished():
        raise RuntimeError(f"{mode}: the simulated run stopped with tasks left")
    return end / 60.0


@dataclass
class FamilyResult:
    family: str
    default: list[float]  # makespan / lower bound, one per seed
    review: list[float]
    cp_list: list[float]
    default_vs_list: list[float]  # default makespan / list makespan


def measure(family: str, seeds: int, n: int = 120, agents: int = 8) -> FamilyResult:
    result = FamilyResult(family, [], [], [], [])
    for seed in range(seeds):
        tasks = random_mission(family, n, seed)
        bound = lower_bound(tasks, agents)
        ours, review, cp = (hybrid_makespan(tasks, agents, "critical_path"), hybrid_makespan(tasks, agents, "review"),
                            critical_path_list(tasks, agents))
        result.default.append(ours / bound)
        result.review.append(review / bound)
        result.cp_list.append(cp / bound)
        result.default_vs_list.append(ours / cp)
    return result


def figures(results: list[FamilyResult], n: int, agents: int) -> list[Figure]:
    figs = []
    for r in results:
        ratio = median(r.default) / median(r.cp_list)
        figs.append(Figure(
            "makespan", f"{r.family}: default priority / lower bound (median of {len(r.default)})",
            median(r.default), "x", median(r.cp_list), "critical-path list / lower bound",
            MAKESPAN_BUDGET, "<= 1.03 x the list's", budget_on_ratio=True,
            note=f"review mode {median(r.review):.3f} x the bound; {n} tasks, {agents} agents; default / list "
                 f"= {ratio:.3f}"))
    return figs


def run(quick: bool = False, *, seed: int = 1) -> tuple[list[Figure], dict]:
    seeds = 3 if quick else 15
    results = [measure(f, seeds) for f in FAMILIES]
    return figures(results, 120, 8), {r.family: {
        "default_over_bound": r.default, "review_over_bound": r.review, "cp_list_over_bound": r.cp_list,
        "default_over_cp_list": r.default_vs_list} for r in results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--tasks", type=int, default=120)
    parser.add_argument("--agents", type=int, default=8)
    args = parser.parse_args()
    results = [measure(f, args.seeds, args.tasks, args.agents) for f in FAMILIES]
    print(render_table(figures(results, args.tasks, args.agents)))
    print(f"{'family':14} {'default':>8} {'review':>8} {'cp list':>8} {'def/list':>9}   (median makespan / bound)")
    for r in results:
        print(f"{r.family:14} {median(r.default):8.3f} {median(r.review):8.3f} {median(r.cp_list):8.3f} "
              f"{median(r.default_vs_list):9.3f}")
    print(json.dumps({r.family: {"default": r.default, "review": r.review, "cp_list": r.cp_list} for r in results}))
