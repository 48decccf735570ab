"""``hybrid-tui runs``: list the runs in a runs folder.

Room: app. Reads each run's state.db read-only; writes nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hybrid_tui.store.runs import DEFAULT_RUNS_DIR, RunSummary, list_runs, summary_as_json
from hybrid_tui.vocabulary import shown_run_status


def add_runs_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--runs-dir DIR`` (default ``.hybrid/runs`` under the working directory); shared by
    every command that creates or finds runs."""
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder holding the run folders (default: {DEFAULT_RUNS_DIR} under the working directory)",
    )


def resolve_runs_dir(args: argparse.Namespace) -> Path:
    return args.runs_dir if getattr(args, "runs_dir", None) else Path.cwd() / DEFAULT_RUNS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser(
        "runs",
        help="list runs: mission, status, tasks done/total, spend",
        description="List the runs in the runs folder, oldest first.",
    )
    add_runs_dir_argument(runs)
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)


def format_runs_table(summaries: list[RunSummary], now: float | None = None) -> str:
    """The runs as a table; a live run whose coordinator stopped beating reads "running
    (coordinator lost)", not "running"."""
    now = time.time() if now is None else now
    header = ("RUN", "MISSION", "STATUS", "TASKS", "SPEND", "STARTED")
    rows = [header]
    for s in summaries:
        if s.error:
            rows.append((s.run_id, "?", f"unreadable: {s.error}", "", "", ""))
            continue
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)) if s.created_at else ""
        rows.append(
            (s.run_id, s.mission, shown_run_status(s.status, s.heartbeat_at, now), f"{s.tasks_done}/{s.tasks_total}", f"${s.spend_usd:.2f}", started)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def cmd_runs(args: argparse.Namespace) -> int:
    runs_dir = resolve_runs_dir(args)
    summaries = list_runs(runs_dir)
    if args.json:
        for s in summaries:
            print(summary_as_json(s))
        return 0
    if not summaries:
        print(f"no runs in {runs_dir}")
        return 0
    print(format_runs_table(summaries))
    return 0
