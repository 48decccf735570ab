"""``hybrid-tui generate``: write a synthetic mission for the sim backend and benchmarks.

Room: app. Writes only the destination folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hybrid_tui.vocabulary import UserError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub) -> None:
    parser = sub.add_parser(
        "generate",
        help="write a synthetic mission (layered DAG, Zipf file overlap) for the sim backend",
        description="Write a synthetic mission of any size: mission.toml (backend sim), repo/, issues/, sis/.",
    )
    parser.add_argument("dest", metavar="DEST", type=Path, help="folder to create (must be absent or empty)")
    parser.add_argument("--tasks", type=_positive, required=True, metavar="N", help="number of tasks")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (same seed, same mission)")
    parser.add_argument("--name", help="mission name (default: synthetic-N)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_tui.app.sample_missions import generate_mission

    try:
        generate_mission(args.dest, tasks=args.tasks, seed=args.seed, name=args.name)
    except FileExistsError as exc:
        raise UserError(f"{exc}; choose a new folder") from None
    print(f"wrote {args.tasks}-task mission to {args.dest}")
    return 0
