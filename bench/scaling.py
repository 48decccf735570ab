"""Scaling of the scheduling benchmark with the DAG size (room: bench).

The same measurement as ``bench.scheduling`` (real coordinator + store on SQLite, 64
instant sim agents, git off) at 1k, 10k and 50k tasks. Per-task cost should stay flat:
the figure is the per-task cost at each size against the 1k run, and the 50k/1k ratio
(CPU time, the steadier clock on a shared machine) is checked against 1.5x - a quadratic
step would show as ~50x. Dask's threaded scheduler runs the same DAG at every size: its
cost per task is not flat (it grows with the DAG), so the comparison is shown per size.
"""

from __future__ import annotations

from .common import Figure
from .scheduling import SchedulingRun, measure

FLAT_RATIO_LIMIT = 1.5


def run(quick: bool = False, *, agents: int = 64, seed: int = 1,
        known: dict[int, SchedulingRun] | None = None) -> tuple[list[Figure], dict]:
    """``known``: size -> a run already measured by ``bench.scheduling`` (not measured twice)."""
    sizes = (100, 300, 1_000) if quick else (1_000, 10_000, 50_000)
    runs: dict[int, SchedulingRun] = dict(known or {})
    for n in sizes:
        if n not in runs:
            runs[n] = measure(n, agents, seed, baselines=n <= 10_000)
    small = runs[sizes[0]].runtime
    figures = []
    for n in sizes:
        rt = runs[n].runtime
        last = n == sizes[-1]
        figures.append(Figure(
            "scaling", f"runtime+store per task, CPU, {n:,} tasks", rt.cpu_ms_per_task, "ms/task",
            small.cpu_ms_per_task, f"same at {sizes[0]:,} tasks",
            FLAT_RATIO_LIMIT if last else None, f"flat: <= {FLAT_RATIO_LIMIT}x" if last else "",
            budget_on_ratio=True,
            note=f"wall {rt.wall_ms_per_task:.2f} ms/task",
        ))
    for n in sizes:
        rt, dask = runs[n].runtime, runs[n].dask
        figures.append(Figure(
            "scaling", f"runtime+store vs dask threaded, CPU, {n:,} tasks", rt.cpu_ms_per_task, "ms/task",
            dask.cpu / n * 1e3, "dask threaded, CPU", 1.0, "<= dask (issue goal)", budget_on_ratio=True,
        ))
    dask_growth = runs[sizes[-1]].dask.cpu / sizes[-1] / (runs[sizes[0]].dask.cpu / sizes[0])
    figures.append(Figure(
        "scaling", f"dask threaded per task, CPU, {sizes[-1]:,} tasks", runs[sizes[-1]].dask.cpu / sizes[-1] * 1e3,
        "ms/task", runs[sizes[0]].dask.cpu / sizes[0] * 1e3, f"same at {sizes[0]:,} tasks",
        note=f"Dask's own cost per task grows {dask_growth:.1f}x from {sizes[0]:,} to {sizes[-1]:,} tasks: shown, "
             "not held to anything"))
    details = {str(n): {"tasks": n, "cpu_s": runs[n].runtime.cpu, "wall_s": runs[n].runtime.wall,
                        "dask_cpu_s": runs[n].dask.cpu} for n in sizes}
    return figures, details


if __name__ == "__main__":
    from .common import render_table

    figs, _ = run()
    print(render_table(figs))
