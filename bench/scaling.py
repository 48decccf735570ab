"""Scaling of the scheduling benchmark with the DAG size (room: bench).

The same measurement as ``bench.scheduling`` (real coordinator + store on SQLite, 64
instant sim agents, git off) at 1k, 10k and 50k tasks. Per-task cost should stay flat:
the figure is the per-task cost at each size against the 1k run, and the 50k/1k ratio
(CPU time, the steadier clock on a shared machine) is checked against the issue's 1.3x -
a quadratic step would show as ~50x. Dask's threaded scheduler runs the same DAG at every
size: its cost per task is not flat (it grows with the DAG), so the comparison is shown per
size.

Each size's runtime is measured ``repeats`` times, in interleaved rounds (1k, 10k, 50k,
1k, ...), and its figure is the least CPU of those runs: a 1k run lasts a third of a
second and a 50k run a quarter of a minute, so on a shared machine one load spike in either
moves a single-shot ratio a lot (the same 1k run measured 0.30 to 0.56 ms a task CPU under
other load, while callgrind counts 1.94M instructions a task at both 1k and 10k). Dask runs
once per size.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import core_bench
from .common import Figure
from .scheduling import RuntimeResult, SchedulingRun, measure, run_runtime

FLAT_RATIO_LIMIT = 1.3
REPEATS = 2


def run(quick: bool = False, *, agents: int = 64, seed: int = 1,
        known: dict[int, SchedulingRun] | None = None, repeats: int = REPEATS) -> tuple[list[Figure], dict]:
    """``known``: size -> a run already measured by ``bench.scheduling`` (its runtime counts
    as one of that size's repeats)."""
    sizes = (100, 300, 1_000) if quick else (1_000, 10_000, 50_000)
    runs: dict[int, SchedulingRun] = {n: r for n, r in (known or {}).items() if n in sizes}
    samples: dict[int, list[RuntimeResult]] = {n: [r.runtime] for n, r in runs.items()}
    for round_number in range(max(1, repeats)):
        for n in sizes:
            if n not in runs:
                runs[n] = measure(n, agents, seed, baselines=n <= 10_000)
                samples[n] = [runs[n].runtime]
            elif len(samples[n]) <= round_number:
                samples[n].append(_runtime_only(n, agents, seed))
    best = {n: min(samples[n], key=lambda r: r.cpu) for n in sizes}
    small = best[sizes[0]]
    figures = []
    for n in sizes:
        rt = best[n]
        last = n == sizes[-1]
        figures.append(Figure(
            "scaling", f"runtime+store per task, CPU, {n:,} tasks", rt.cpu_ms_per_task, "ms/task",
            small.cpu_ms_per_task, f"same at {sizes[0]:,} tasks",
            FLAT_RATIO_LIMIT if last else None, f"flat: <= {FLAT_RATIO_LIMIT}x" if last else "",
            budget_on_ratio=True,
            note=f"least CPU of {len(samples[n])} runs "
                 f"({', '.join(f'{r.cpu_ms_per_task:.3f}' for r in samples[n])} ms/task); "
                 f"wall {rt.wall_ms_per_task:.2f} ms/task",
        ))
    for n in sizes:
        rt, dask = best[n], runs[n].dask
        figures.append(Figure(
            "scaling", f"runtime+store vs dask threaded, CPU, {n:,} tasks", rt.cpu_ms_per_task, "ms/task",
            dask.cpu / n * 1e3, "dask threaded, CPU",
            note="shown, not a budget: Dask persists nothing, and every state change here is stored first",
        ))
    dask_growth = runs[sizes[-1]].dask.cpu / sizes[-1] / (runs[sizes[0]].dask.cpu / sizes[0])
    figures.append(Figure(
        "scaling", f"dask threaded per task, CPU, {sizes[-1]:,} tasks", runs[sizes[-1]].dask.cpu / sizes[-1] * 1e3,
        "ms/task", runs[sizes[0]].dask.cpu / sizes[0] * 1e3, f"same at {sizes[0]:,} tasks",
        note=f"Dask's own cost per task grows {dask_growth:.1f}x from {sizes[0]:,} to {sizes[-1]:,} tasks: shown, "
             "not held to anything"))
    details = {str(n): {"tasks": n, "cpu_s": best[n].cpu, "wall_s": best[n].wall,
                        "cpu_s_each_run": [r.cpu for r in samples[n]],
                        "dask_cpu_s": runs[n].dask.cpu} for n in sizes}
    return figures, details


def _runtime_only(n: int, agents: int, seed: int) -> RuntimeResult:
    """One more run of the coordinator over the same DAG (no Dask, no baselines)."""
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-scaling-") as tmp:
        result = run_runtime(core_bench.random_dag(n, seed), agents, seed, Path(tmp))
    if result.exit_code != 0:
        raise RuntimeError(f"the coordinator exited {result.exit_code} on the benchmark DAG")
    return result


if __name__ == "__main__":
    import argparse

    from .common import render_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (proves the harness works)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runtime runs per size; the least CPU counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figs, _ = run(args.quick, seed=args.seed, repeats=args.repeats)
    print(render_table(figs))
