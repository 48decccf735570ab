"""Planning a recorded mission (room: bench): the L2 phase of a ``replay`` run, where every
issue's planner returns the mission's recorded SIS, timed from the run's creation to the
first dispatch's doorstep (``runtime.planning.plan_issues``), at two sizes.

    python -m bench.planning --tasks 1000 --tasks 10000

Linear means the CPU per task stays flat as the mission grows (it was quadratic: 556 s at
10,000 tasks). A figure to read, never a timed test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio

from hybrid_tui.app.launch import start_run
from hybrid_tui.app.sample_missions import generate_mission
from hybrid_tui.runtime.planning import plan_issues


def measure(tasks: int, seed: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as tmp:
        mission = Path(tmp) / "mission"
        generate_mission(mission, tasks=tasks, seed=seed)
        store, _, coordinator = start_run(mission, Path(tmp) / "runs", "replay", git=False)
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            ok = anyio.run(plan_issues, coordinator)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            assert ok
        finally:
            coordinator.events.close()
            store.close()
    return {"tasks": tasks, "cpu_s": cpu, "wall_s": wall,
            "cpu_ms_per_task": cpu / tasks * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.planning", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, action="append", help="mission size (repeatable; default 1000 and 10000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = [measure(n, args.seed) for n in (args.tasks or [1000, 10_000])]
    print(f"{'tasks':>7} {'CPU s':>8} {'wall s':>8} {'CPU ms/task':>12}")
    for row in rows:
        print(f"{row['tasks']:>7} {row['cpu_s']:>8.2f} {row['wall_s']:>8.2f} {row['cpu_ms_per_task']:>12.3f}")
    if len(rows) > 1:
        print(f"CPU per task, largest / smallest: {rows[-1]['cpu_ms_per_task'] / rows[0]['cpu_ms_per_task']:.2f}x "
              "(1x is linear)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
