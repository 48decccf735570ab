"""``python -m bench``: every benchmark, one table, JSON in bench/results/ (room: bench).

    python -m bench                 all benchmarks at full size (about 10 minutes on 2 cores)
    python -m bench --quick         tiny sizes (proves the harness works; figures meaningless)
    python -m bench --only makespan makespans: default priority vs critical-path list vs lower bound
    python -m bench --only console  one benchmark (repeatable: --only store --only integration)
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from .common import RESULTS_DIR, Figure, render_table, save_results

BENCHMARKS = ("scheduling", "store", "integration", "console", "scaling", "makespan", "distributed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark ({', '.join(BENCHMARKS)}); repeatable")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results file (default bench/results/latest.json, or quick.json with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    out = args.out or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    started = time.perf_counter()
    figures: list[Figure] = []
    details: dict = {}
    failed: list[str] = []
    known_scheduling: dict = {}
    for name in selected:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            if name == "scheduling":
                from . import scheduling

                result = scheduling.measure_with_chain(300 if args.quick else 10_000, 64, args.seed,
                                                        chain=50 if args.quick else 200)
                known_scheduling[result.tasks] = result
                figs = scheduling.figures(result, 64)
                data = scheduling.details_of(result, 64, args.seed)
            elif name == "store":
                from . import store_bench

                figs, data = store_bench.run(args.quick, seed=args.seed)
            elif name == "integration":
                from . import integration

                figs, data = integration.run(args.quick)
            elif name == "console":
                from . import console

                figs, data = console.run(args.quick, seed=args.seed)
            elif name == "makespan":
                from . import makespan

                figs, data = makespan.run(args.quick, seed=args.seed)
            elif name == "distributed":
                from . import distributed

                figs, data = distributed.run(args.quick, seed=args.seed)
            else:
                from . import scaling

                figs, data = scaling.run(args.quick, seed=args.seed, known=known_scheduling)
        except Exception:
            failed.append(name)
            traceback.print_exc()
            continue
        figures += figs
        details[name] = data | {"seconds": round(time.perf_counter() - t0, 1)}
        print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    print(render_table(figures))
    missed = [f for f in figures if f.verdict == "MISSED"]
    print(f"\n{len(figures)} figures in {seconds:.0f} s; budgets met {sum(f.verdict == 'met' for f in figures)}, "
          f"missed {len(missed)}" + (f"; FAILED to run: {', '.join(failed)}" if failed else ""))
    path = save_results(figures, out, options={"quick": args.quick, "only": args.only, "seed": args.seed},
                        seconds=seconds, extra=details | {"failed": failed})
    print(f"results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
