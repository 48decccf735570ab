"""``hybrid-tui worker --broker URL --name NAME [--slots N]``: run attempts sent by coordinators.

Room: app. Parses arguments and hands over to :class:`hybrid_tui.runtime.worker.Worker`
(Celery 5 on a Redis broker; imported when the command runs).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hybrid_tui.vocabulary import UserError

_WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run attempts for coordinators on this machine (Celery + Redis)",
                       description="Consume this worker's queue on the Redis broker and run the attempts "
                                   "coordinators send (run MISSION --broker URL). Secrets come from this "
                                   "process's environment only.")
    p.add_argument("--broker", required=True, metavar="URL", help="Redis broker, redis://HOST:PORT/DB")
    p.add_argument("--name", required=True, help="this worker's name (its queue; unique per broker)")
    p.add_argument("--slots", type=int, default=1, help="attempts run at once (default 1)")
    p.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                   help="git cache, worktrees and logs (default: .hybrid/workers/NAME)")
    p.add_argument("--backends", default="replay,sim,anthropic,cli",
                   help="backends this worker offers, comma-separated (default: all)")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    if not _WORKER_NAME.match(args.name):
        raise UserError(f"worker --name {args.name!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    if args.slots < 1:
        raise UserError(f"worker --slots: must be at least 1 (got {args.slots})")
    if not args.broker.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"worker --broker {args.broker!r}: expected a Redis URL (redis://HOST:PORT/DB)")
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    from hybrid_tui.runtime.worker import ALL_BACKENDS, Worker

    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown or not backends:
        raise UserError(f"worker --backends: unknown {', '.join(unknown) or '(none given)'} "
                        f"(known: {', '.join(ALL_BACKENDS)})")
    work_dir = args.work_dir or Path(".hybrid") / "workers" / args.name
    return Worker(args.broker, args.name, args.slots, work_dir.absolute(), backends).serve()
