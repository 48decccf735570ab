"""Benchmark of the scheduling core alone (room: bench; drives hybrid_tui.core, no I/O).

A seeded random 10,000-task DAG, 64 agents that finish instantly. The main row follows the
runtime's calls per task (coordinator + task_state): each loop turn ``tick``, ``is_finished``,
``dispatch(limit=dispatch_batch)``; per dispatch ``spend()`` and ``task(id).info`` (attempt
limits), ``advance`` to ``validating`` then ``integrating``, ``succeed``; and ``shown_score(id)``
for every transition into pending/ready/retry_wait/running (task_state stores the score).
Attempts finish one loop turn after their dispatch, so locks are held across a dispatch.
The second row is the bare lifecycle (dispatch + succeed, unlimited batch).
Reported in CPU time (process_time: the machine is shared) per task lifecycle next to a plain Python loop walking the same DAG in
topological order (the floor any scheduler pays), and Dask's threaded scheduler on the
same graph when Dask is installed. Budget: the core's share of DESIGN.md's 0.3 ms per task
(store + runtime take the rest), taken here as one third: 100 us.

Reference (2 shared cores, best of 7): the runtime's calls went from 40.0 to 18.2 us per
task and the bare lifecycle from 30.5 to 14.7 us when the core was tuned (commit after
a01755a; callgrind: 3445M -> 1544M instructions for the 10,000-task run).

    .venv/bin/python -m bench.core_bench [--tasks N] [--agents N] [--seed N] [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from hybrid_tui.core import Scheduler, TaskInfo, TaskStatus, TaskTransition
from hybrid_tui.spec.models import PoliciesSection

CORE_BUDGET_US = 100.0


def random_dag(n: int, seed: int) -> list[TaskInfo]:
    rng = random.Random(seed)
    files = [f"src/mod{i}.py" for i in range(max(n // 5, 10))]
    tasks = []
    for i in range(n):
        window = range(max(0, i - 200), i)  # dependencies on recent tasks: a realistic, deep DAG
        deps = tuple(f"T{j:05}" for j in rng.sample(window, min(len(window), rng.choice([0, 1, 2, 3]))))
        tasks.append(TaskInfo(f"T{i:05}", rng.choice(["CRITICAL", "HIGH", "MEDIUM", "LOW"]),
                              rng.choice(["api", "db", "ui", "infra", "docs"]), deps,
                              tuple(rng.sample(files, rng.choice([1, 1, 2, 3]))), rng.uniform(1, 60), 0.01))
    return tasks


SCORED_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.READY, TaskStatus.RETRY_WAIT, TaskStatus.RUNNING})


def run_core(tasks: list[TaskInfo], agents: int, seed: int, *, batch: int | None = None) -> tuple[float, int]:
    """The runtime's call pattern (see the module docstring); ``batch`` defaults to the
    policies' ``dispatch_batch``. Returns (CPU seconds, change records)."""
    policies = PoliciesSection()
    batch = policies.dispatch_batch if batch is None else batch
    start = time.process_time()
    sched = Scheduler(tasks, policies=policies, mission_budget_usd=1e9, retry_budget_usd=1e9,
                      pool_min=agents, pool_max=agents, rng=random.Random(seed))
    changes = 0

    def persist(records: list) -> None:
        nonlocal changes
        changes += len(records)
        for ch in records:  # task_state.py: the score of each task moving into a queued/running state
            if type(ch) is TaskTransition and ch.new in SCORED_STATUSES:
                sched.shown_score(ch.task_id)

    for i in range(agents):
        persist(sched.add_agent(f"L3.{i:02}", 0.0))
    now = 0.0
    in_flight: list = []
    reads: list = []
    while not sched.is_finished():
        now += 1.0
        persist(sched.tick(now))
        dispatches, ch = sched.dispatch(now, limit=batch)
        persist(ch)
        for d in dispatches:  # coordinator.limits() reads these for the attempt's dollar cap
            reads.append((sched.spend(), sched.task(d.task_id).info))
        reads.clear()
        if not dispatches and not in_flight:
            raise RuntimeError(f"no progress: {sched.counts()}")
        for d in in_flight:
            persist(sched.advance(d.task_id, "validating", now))
            persist(sched.advance(d.task_id, "integrating", now))
            persist(sched.succeed(d.task_id, now, 0.01))
        in_flight = dispatches
    return time.process_time() - start, changes


def run_core_bare(tasks: list[TaskInfo], agents: int, seed: int) -> tuple[float, int]:
    """Bare lifecycle: dispatch everything possible, succeed at once (no phases, no reads)."""
    start = time.process_time()
    sched = Scheduler(tasks, policies=PoliciesSection(), mission_budget_usd=1e9, retry_budget_usd=1e9,
                      pool_min=agents, pool_max=agents, rng=random.Random(seed))
    for i in range(agents):
        sched.add_agent(f"L3.{i:02}", 0.0)
    now, changes = 0.0, 0
    while not sched.is_finished():
        now += 1.0
        changes += len(sched.tick(now))
        dispatches, ch = sched.dispatch(now)
        changes += len(ch)
        if not dispatches:
            raise RuntimeError(f"no progress: {sched.counts()}")
        for d in dispatches:
            changes += len(sched.succeed(d.task_id, now, 0.01))
    return time.process_time() - start, changes


def run_baseline(tasks: list[TaskInfo]) -> float:
    """Kahn's algorithm: the least work that respects the dependencies."""
    start = time.process_time()
    dependents: dict[str, list[str]] = {t.task_id: [] for t in tasks}
    indegree = {}
    for t in tasks:
        indegree[t.task_id] = len(t.dependencies)
        for dep in t.dependencies:
            dependents[dep].append(t.task_id)
    queue = deque(tid for tid, n in indegree.items() if n == 0)
    done = 0
    while queue:
        tid = queue.popleft()
        done += 1
        for child in dependents[tid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    assert done == len(tasks)
    return time.process_time() - start


def run_dask(tasks: list[TaskInfo], agents: int) -> float | None:
    try:
        import dask.threaded
    except ImportError:
        return None

    def noop(*_args):
        return None

    graph = {t.task_id: (noop, *t.dependencies) for t in tasks}
    start = time.process_time()
    dask.threaded.get(graph, [t.task_id for t in tasks], num_workers=agents)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args(argv)
    tasks = random_dag(args.tasks, args.seed)
    n = len(tasks)
    core = min(run_core(tasks, args.agents, args.seed)[0] for _ in range(args.repeat))
    changes = run_core(tasks, args.agents, args.seed)[1]
    bare = min(run_core_bare(tasks, args.agents, args.seed)[0] for _ in range(args.repeat))
    base = min(run_baseline(tasks) for _ in range(args.repeat))
    dask_s = run_dask(tasks, args.agents)
    us = lambda seconds: seconds / n * 1e6  # noqa: E731
    rows = [("core, runtime's calls per task", us(core), us(core) / us(base)),
            ("core, bare dispatch + succeed", us(bare), us(bare) / us(base)),
            ("baseline: topological walk", us(base), 1.0)]
    if dask_s is not None:
        rows.append(("dask threaded scheduler (no-op tasks)", us(dask_s), us(dask_s) / us(base)))
    print(f"core benchmark: {n} tasks, {args.agents} instant agents, seed {args.seed}, best of {args.repeat}, CPU time; "
          f"{changes / n:.1f} change records per task")
    print(f"{'':42} {'us/task':>10} {'x baseline':>11}")
    for name, per_task, ratio in rows:
        print(f"{name:42} {per_task:10.2f} {ratio:11.1f}")
    verdict = "within" if us(core) <= CORE_BUDGET_US else "OVER"
    print(f"core budget {CORE_BUDGET_US:.0f} us/task (a third of DESIGN.md's 0.3 ms): {verdict} "
          f"({us(core) / CORE_BUDGET_US:.0%} used)")


if __name__ == "__main__":
    main()
