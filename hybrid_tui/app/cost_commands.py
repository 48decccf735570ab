"""``hybrid-tui report`` and ``hybrid-tui estimate``.

Room: app. Reads a run's store or a mission folder and prints; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

from hybrid_tui.vocabulary import UserError
from hybrid_tui.store import StoreError
from hybrid_tui.app.runs_commands import add_runs_dir_argument, resolve_runs_dir, store_url_of

from hybrid_tui.costs.pricing import PricingError
from hybrid_tui.costs.report import RunNotFound, render_markdown, report_for


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report",
        help="Markdown (or JSON) report of a finished or running run",
        description=(
            "Summary, cost by phase and model, per-task attempts and cost, failures by type, "
            "estimate vs actual, budget events and the timeline of one run."
        ),
    )
    report.add_argument("run", metavar="RUN", help="run id under the runs folder, or a run folder path")
    add_runs_dir_argument(report)
    report.add_argument("--json", action="store_true", help="print one JSON object instead of Markdown")
    report.set_defaults(func=cmd_report)

    estimate = sub.add_parser(
        "estimate",
        help="forecast a mission's cost and duration with a simulated run",
        description=(
            "Runs the mission's tasks through the same scheduling core as a real run, in virtual "
            "time, with the SIS estimates and the pricing table. Prints cost by layer, expected "
            "retry cost, wall-clock duration and agent utilisation."
        ),
    )
    estimate.add_argument("mission", metavar="MISSION", help="mission folder or its mission.toml")
    estimate.add_argument("--agents", type=int, default=None, metavar="N",
                          help="implementer pool size (default: the mission's max_implementers)")
    estimate.add_argument("--failure-rate", type=float, default=0.0, metavar="R",
                          help="probability that an attempt fails, 0..1 (default 0)")
    estimate.add_argument("--backend-latency", type=float, default=0.0, metavar="SECONDS",
                          help="extra seconds per attempt on top of the SIS duration (default 0)")
    estimate.add_argument("--seed", type=int, default=0, help="random seed of the simulated failures")
    estimate.add_argument("--approval-minutes", type=float, default=0.0, metavar="M",
                          help="how long a task held by [policies] approve waits for its approval (default 0)")
    estimate.add_argument("--sweep", action="store_true",
                          help="also forecast failure rates 0/10/20/30 %% and pools of 4/8/12 agents")
    estimate.add_argument("--json", action="store_true", help="print one JSON object")
    estimate.set_defaults(func=cmd_estimate)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        report = report_for(args.run, resolve_runs_dir(args), store_url=store_url_of(args))
    except (RunNotFound, StoreError, PricingError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_markdown(report))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from hybrid_tui.costs.estimate import cmd_estimate as run_estimate  # the simulator pulls in the core

    return run_estimate(args)
