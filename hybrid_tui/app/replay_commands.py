"""``hybrid-tui export-replay RUN DEST`` and ``hybrid-tui demo``.

Room: app. Argument parsing only; the work is in ``app.export`` and ``app.demo``.

Each command imports the layers it drives when it runs: ``hybrid-tui`` imports every
command module to build its help, and the coordinator and the console take about a second
to import.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hybrid_tui.vocabulary import UserError
from hybrid_tui.app.runs_commands import add_runs_dir_argument, store_url_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-replay", help="turn a run into a mission folder that replays it offline",
        description="Write DEST: a mission folder (replay backend) that reproduces RUN offline with the "
                    "same file changes, outcomes and recorded costs.",
    )
    p.add_argument("run", metavar="RUN", help="run folder or run id")
    p.add_argument("dest", metavar="DEST", type=Path, help="new mission folder (must not exist or be empty)")
    p.add_argument("--pace", type=float, default=1.0,
                   help="scale the recorded durations written to replay/ (default 1 = as recorded)")
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_export_replay)

    p = sub.add_parser("demo", help="watch the web-18 sample mission run in the console",
                       description="Run sample_missions/web-18 offline (replay backend) at a watchable pace.")
    p.add_argument("--pace", type=float, default=None,
                   help="scale recorded durations (default: chosen so the run takes 1-2 minutes)")
    p.add_argument("--headless", action="store_true", help="no console: progress on stdout")
    p.add_argument("--runs-dir", type=Path, help="where the run folder goes (default: a temporary folder)")
    p.add_argument("--mission", type=Path, help="another mission folder to demo (default: web-18)")
    p.add_argument("--theme", default="dark")
    p.set_defaults(func=cmd_demo)


def cmd_export_replay(args: argparse.Namespace) -> int:
    from hybrid_tui.app.export import ExportError, export_replay

    try:
        summary = export_replay(args.run, args.dest, pace=args.pace, runs_dir=args.runs_dir,
                                store_url=store_url_of(args))
    except ExportError as exc:
        raise UserError(str(exc)) from None
    print(
        f"exported run {summary.run_id} to {summary.dest}: {summary.issues} issue(s), {summary.tasks} task(s), "
        f"{summary.recorded_attempts} recorded attempt(s) of {summary.recorded_tasks} task(s)"
    )
    if summary.missing:
        print(f"note: no complete recording for {', '.join(summary.missing)}: those replay their SIS operations")
    print(f"replay it with: hybrid-tui run {summary.dest}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hybrid_tui.app.demo import DemoError, run_demo

    try:
        return run_demo(pace=args.pace, headless=args.headless, runs_dir=args.runs_dir, mission=args.mission,
                        theme=args.theme, store_url=store_url_of(args))
    except DemoError as exc:
        raise UserError(str(exc)) from None
