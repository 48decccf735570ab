"""``hybrid-tui runs``: list the runs in a runs folder (or in a PostgreSQL store).

Room: app. Reads each run's store read-only; writes nothing. Also the ``--runs-dir`` and
``--store`` options every command that creates or finds runs shares.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hybrid_tui.store import StoreError
from hybrid_tui.store.db import redact_url, store_backend_of
from hybrid_tui.store.runs import DEFAULT_RUNS_DIR, RunSummary, list_runs, list_store_runs, summary_as_json
from hybrid_tui.vocabulary import UserError

# The store of runs created without --store (the test suite's PostgreSQL leg sets it).
STORE_ENV = "HYBRID_TUI_STORE"


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
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="the store: postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass) "
             f"or sqlite:///PATH (default: ${STORE_ENV}, else the run folder's state.db)",
    )


def store_url_of(args: argparse.Namespace) -> str | None:
    """``--store``, checked; else None (a new run: ``$HYBRID_TUI_STORE`` or the run folder's
    state.db; an existing run: its folder's state.db or the store its store.url names)."""
    url = getattr(args, "store", None) or None
    if url is not None:
        try:
            store_backend_of(url)
        except StoreError:
            raise UserError(f"--store {redact_url(url)}: not a URL (postgresql://USER@HOST:PORT/DB or sqlite:///PATH)") from None
    return url


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


def format_runs_table(summaries: list[RunSummary]) -> str:
    header = ("RUN", "MISSION", "STATUS", "TASKS", "SPEND", "STARTED")
    rows = [header]
    for s in summaries:
        if s.error:
            rows.append((s.run_id, "?", f"unreadable: {s.error}", "", "", ""))
            continue
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)) if s.created_at else ""
        rows.append(
            (s.run_id, s.mission, s.status, f"{s.tasks_done}/{s.tasks_total}", f"${s.spend_usd:.2f}", started)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def cmd_runs(args: argparse.Namespace) -> int:
    runs_dir = resolve_runs_dir(args)
    url = store_url_of(args)  # only an explicit --store lists a shared store
    try:
        summaries = list_store_runs(url) if url else list_runs(runs_dir)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        for s in summaries:
            print(summary_as_json(s))
        return 0
    if not summaries:
        print(f"no runs in {redact_url(url) if url else runs_dir}")
        return 0
    print(format_runs_table(summaries))
    return 0
