"""``hybrid-tui run | resume | attach | stop | pause | resume-dispatch | retry | rollback | scale | budget``.

Room: app. Parses arguments, opens or creates the run, then hands over to the console
(``hybrid_tui.tui.app.run_console``) or to headless mode. Control commands only enqueue a
row in the Control table: the coordinator driving the run applies it.

Each command imports the layers it drives when it runs: ``hybrid-tui`` imports every
command module to build its help, and the coordinator and the console take about a second
to import.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hybrid_tui.vocabulary import LIVE_RUN_STATUSES, UserError, coordinator_alive, inert
from hybrid_tui.app.drive import drive_run
from hybrid_tui.app.runs_commands import add_runs_dir_argument, store_url_of
from hybrid_tui.store import queries
from hybrid_tui.store.runs import run_store_location

BACKENDS = ("replay", "sim", "anthropic", "cli")
MAX_POOL_SIZE = 256  # agents of one run (each holds a worktree)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a mission (or carry on a run folder)",
                       description="Run a mission folder, or carry on the run in a run folder.")
    p.add_argument("target", metavar="MISSION|RUN_DIR")
    _run_options(p)
    p.add_argument("--backend", choices=BACKENDS, help="agent backend (default: mission.toml [agents] backend)")
    p.add_argument("--no-git", action="store_true", help="no worktrees, no integration (load tests)")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the check of the project's environment (setup, validation programs) before starting")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="recover a run after a crash or stop, and carry on")
    p.add_argument("target", metavar="RUN")
    _run_options(p)
    p.add_argument("--backend", choices=BACKENDS)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("attach", help="open the console on a run driven by another process")
    p.add_argument("target", metavar="RUN")
    add_runs_dir_argument(p)
    p.add_argument("--theme", default="dark")
    p.add_argument("--read-only", action="store_true", help="watch only: the console queues no controls")
    p.set_defaults(func=cmd_attach)

    for name, command, text in (
        ("stop", "stop", "stop the coordinator of a run (running attempts are interrupted)"),
        ("pause", "pause", "pause dispatching"),
        ("resume-dispatch", "resume", "resume dispatching after a pause"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("target", metavar="RUN")
        add_runs_dir_argument(p)
        p.set_defaults(func=cmd_control, control=command)
    for name, command, text in (
        ("retry", "retry", "queue a failed/blocked/cancelled task again"),
        ("cancel", "cancel", "cancel a task: its running attempt is stopped, its queued dependents are blocked "
                             "until it is retried"),
        ("cancel-dependents", "cancel_dependents", "cancel the tasks that depend on a task"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("target", metavar="RUN")
        p.add_argument("task_id", metavar="TASK")
        add_runs_dir_argument(p)
        p.set_defaults(func=cmd_control, control=command)
    p = sub.add_parser("approve", help="release tasks that [policies] approve holds (awaiting_approval)")
    p.add_argument("target", metavar="RUN")
    p.add_argument("task_ids", metavar="TASK", nargs="+")
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_approve)
    p = sub.add_parser("reject", help="fail a task awaiting approval (it goes to the attention view with the reason)")
    p.add_argument("target", metavar="RUN")
    p.add_argument("task_id", metavar="TASK")
    p.add_argument("--reason", default="", help="why (shown in the attention view and the report)")
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_reject)
    p = sub.add_parser(
        "rollback", help="revert one task's commit on the mission branch (--cascade: and what was built on it)",
        description="Revert a task's integration commit. Refused when a later task depends on it or touched "
                    "the same files; --cascade then reverts those too (newest first, all or none), after "
                    "showing them and asking.")
    p.add_argument("target", metavar="RUN")
    p.add_argument("task_id", metavar="TASK")
    p.add_argument("--cascade", action="store_true",
                   help="also revert every integrated task that depends on TASK or touched its files after it")
    p.add_argument("--yes", action="store_true", help="with --cascade: do not ask (for scripts)")
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser("scale", help="set the L3 pool target")
    p.add_argument("target", metavar="RUN")
    p.add_argument("size", type=int)
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_control, control="scale")
    p = sub.add_parser("budget", help="set the mission and/or retry budget of a run (then retry what it refused)",
                       description="Raise (or lower) a run's budgets. Tasks the old budget refused stay failed: "
                                   "retry them (hybrid-tui retry RUN TASK) once the budget covers them.")
    p.add_argument("target", metavar="RUN")
    p.add_argument("--mission-usd", type=float, metavar="USD", help="new mission budget in dollars")
    p.add_argument("--retry-usd", type=float, metavar="USD", help="new retry budget in dollars")
    add_runs_dir_argument(p)
    p.set_defaults(func=cmd_budget)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no console: progress on stdout")
    p.add_argument("--json", action="store_true", help="headless, one JSON object per line on stdout")
    p.add_argument("--agents", type=int, help="L3 pool size (default: mission.toml [agents])")
    p.add_argument("--pace", type=float, default=0.0, help="scale recorded/simulated durations (0 = instant)")
    add_runs_dir_argument(p)
    p.add_argument("--theme", default="dark")
    p.add_argument("--seed", type=int, default=0, help="seed of the sim backend and of retry jitter")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the run goes")
    p.add_argument("--broker", metavar="URL",
                   help="run attempts on workers through this Redis broker (redis://HOST:PORT/DB); "
                        "default: in this process")
    p.add_argument("--lease-seconds", type=float, default=None, metavar="S",
                   help="with --broker: an attempt whose worker stops renewing its lease this long is interrupted "
                        "and dispatched again (default 10)")
    p.add_argument("--wait-workers", type=float, default=30.0, metavar="S",
                   help="with --broker: how long to wait for a first worker before giving up (default 30)")


def require_theme(name: str) -> None:
    """UserError (exit 2) when ``--theme`` names no theme the console offers: checked before
    a run is created or opened, so a bad value changes nothing."""
    try:
        from hybrid_tui.tui.themes import check_theme_name  # late: a build without the console still runs
    except ImportError:
        return
    try:
        check_theme_name(name)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _is_run_dir(target: str) -> bool:
    return run_store_location(Path(target)) is not None


def _check_run_options(args: argparse.Namespace) -> None:
    """Option values refused before anything is opened or created."""
    if not 0 <= args.pace < float("inf"):  # also refuses nan
        raise UserError(f"--pace {args.pace:g}: give a finite number of seconds per recorded second, 0 or more")
    if args.agents is not None and args.agents < 1:
        raise UserError(f"--agents must be at least 1 (got {args.agents})")


def _worker_options(args: argparse.Namespace) -> dict:
    """``--broker``: checked (Redis reachable, a worker advertised) before any run is created."""
    if not args.broker:
        return {}
    from hybrid_tui.runtime.remote import NoWorkers, probe_workers

    if getattr(args, "no_git", False):
        raise UserError("--broker: workers need git (they fetch the base and return a patch); drop --no-git")
    if args.lease_seconds is not None and not 0.5 <= args.lease_seconds < float("inf"):
        raise UserError(f"--lease-seconds: {args.lease_seconds:g} is not a number of seconds >= 0.5")
    try:
        probe_workers(args.broker, args.wait_workers)
    except NoWorkers as exc:
        raise UserError(str(exc)) from None
    return {"broker": args.broker, "lease_seconds": args.lease_seconds}


def _start_metrics(run_id: str, port: int | None):
    from hybrid_tui.views.metrics import MetricsError, start_metrics

    try:
        metrics = start_metrics(run_id, port)
    except MetricsError as exc:
        raise UserError(str(exc)) from None
    if metrics is not None:
        print(f"hybrid-tui: metrics on {metrics.url}", file=sys.stderr)
    return metrics


def cmd_run(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, start_run
    from hybrid_tui.store.runs import new_run_id

    require_theme(args.theme)
    _check_run_options(args)
    if _is_run_dir(args.target):
        return cmd_resume(args)
    workers = _worker_options(args)
    # The metrics port is taken before the run exists: a busy port refuses the start with
    # nothing created.
    run_id = new_run_id()
    metrics = _start_metrics(run_id, args.metrics_port)
    try:
        store, run_id, coordinator = start_run(args.target, args.runs_dir, args.backend, agents=args.agents,
                                               pace=args.pace, git=not args.no_git, seed=args.seed, run_id=run_id,
                                               preflight=not args.no_preflight, store_url=store_url_of(args),
                                               **workers)
    except LaunchError as exc:
        if metrics is not None:
            metrics.close()
        raise UserError(str(exc)) from None
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    return _drive(args, store, run_id, coordinator, metrics)


def cmd_resume(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, open_run

    require_theme(args.theme)
    _check_run_options(args)
    workers = _worker_options(args)
    try:
        store, run_id, coordinator = open_run(args.target, args.runs_dir, backend=args.backend, pace=args.pace,
                                              agents=args.agents, seed=args.seed, store_url=store_url_of(args),
                                              **workers)
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    try:
        metrics = _start_metrics(run_id, args.metrics_port)
    except BaseException:
        store.close()
        raise
    return _drive(args, store, run_id, coordinator, metrics, resumed=True)


def _drive(args: argparse.Namespace, store, run_id: str, coordinator, metrics, resumed: bool = False) -> int:
    try:
        return drive_run(store, run_id, coordinator, headless=args.headless, json_mode=args.json, theme=args.theme,
                         resumed=resumed)
    finally:
        if metrics is not None:
            metrics.close()


def cmd_attach(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, open_run_store

    require_theme(args.theme)
    try:
        store, run_id = open_run_store(args.target, args.runs_dir, store_url_of(args))
        from hybrid_tui.tui.app import run_console  # type: ignore[import-not-found]
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    except ImportError:
        raise UserError("the console is not available in this build") from None
    return int(run_console(store, run_id, coordinator=None, theme=args.theme, read_only=args.read_only) or 0)


def cmd_control(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, open_run_store

    try:
        store, run_id = open_run_store(args.target, args.runs_dir, store_url_of(args))
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    fields = {}
    try:
        if args.control == "stop":
            _refuse_stop_without_coordinator(run_id)
        # Refused now, not later by the coordinator with the command answered "queued".
        if getattr(args, "task_id", None):
            if queries.task_record(run_id, args.task_id) is None:
                raise UserError(f"{args.control}: run {run_id} has no task {args.task_id!r}")
            fields["task_id"] = args.task_id
        if getattr(args, "size", None) is not None:
            if not 1 <= args.size <= MAX_POOL_SIZE:
                raise UserError(f"scale: pool size {args.size} is not between 1 and {MAX_POOL_SIZE}")
            fields["size"] = args.size
    except UserError:
        store.close()
        raise
    control_id = store.enqueue_control(run_id, args.control, source="cli", **fields)
    of_task = f" of {args.task_id}" if fields.get("task_id") else ""  # as rollback, approve and reject say
    _say_queued(run_id, f"queued {args.control}{of_task} for run {run_id} (control {control_id})")
    return 0


def _coordinator_drives(run_id: str) -> bool:
    run = queries.run_record(run_id)
    return run.status in LIVE_RUN_STATUSES and (run.status == "created" or coordinator_alive(run.heartbeat_at, time.time()))


def _say_queued(run_id: str, line: str) -> None:
    """The "queued ..." line; when no coordinator drives the run, what will apply the command
    (a finished run answered "queued" and nothing visible happened)."""
    print(line)
    if not _coordinator_drives(run_id):
        print(f"no coordinator drives run {run_id} now: `hybrid-tui resume {run_id}` applies it")


def _refuse_stop_without_coordinator(run_id: str) -> None:
    """A stop is for a live coordinator. Queued for a run nobody drives, it was applied by the
    next `resume`, which then stopped at once: refuse it instead (the other controls are meant
    to wait for that resume)."""
    if _coordinator_drives(run_id):
        return
    run = queries.run_record(run_id)
    state = "its coordinator is gone" if run.status in LIVE_RUN_STATUSES else f"run {run_id} is {run.status}"
    raise UserError(f"stop: {state} and no coordinator drives it: nothing to stop "
                    f"(a stop queued now would stop the next `hybrid-tui resume {run_id}`)")


def _open_with_tasks(args: argparse.Namespace, task_ids: list[str], command: str):
    """The run's store, after checking every task id exists (one line naming the first unknown)."""
    from hybrid_tui.app.launch import LaunchError, open_run_store
    from hybrid_tui.store import queries

    try:
        store, run_id = open_run_store(args.target, args.runs_dir, store_url_of(args))
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    for task_id in task_ids:
        if queries.task_record(run_id, task_id) is None:
            store.close()
            raise UserError(f"{command}: run {run_id} has no task {task_id!r}")
    return store, run_id


def cmd_approve(args: argparse.Namespace) -> int:
    store, run_id = _open_with_tasks(args, args.task_ids, "approve")
    queued = [f"queued approve of {task_id} for run {run_id} (control "
              f"{store.enqueue_control(run_id, 'approve', source='cli', task_id=task_id)})"
              for task_id in dict.fromkeys(args.task_ids)]
    _say_queued(run_id, "\n".join(queued))
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    store, run_id = _open_with_tasks(args, [args.task_id], "reject")
    control_id = store.enqueue_control(run_id, "reject", source="cli", task_id=args.task_id, reason=args.reason)
    _say_queued(run_id, f"queued reject of {args.task_id} for run {run_id} (control {control_id})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from hybrid_tui.store import queries

    store, run_id = _open_with_tasks(args, [args.task_id], "rollback")
    fields: dict = {"task_id": args.task_id}
    if args.cascade:
        scope = queries.rollback_scope(run_id, args.task_id)
        if not scope:
            raise UserError(f"rollback: task {args.task_id} has no integrated commit left to roll back")
        print(f"cascade rollback of {args.task_id} reverts {len(scope)} commit(s), newest first "
              "(listed in the order they landed):")
        for commit in scope:
            files = ", ".join(commit.files[:4]) + (f" (+{len(commit.files) - 4})" if len(commit.files) > 4 else "")
            print(f"  {commit.sha[:12]}  {commit.task_id}  {inert(files)}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise UserError("rollback --cascade: no terminal to confirm on; add --yes to confirm")
            if input(f"Revert these {len(scope)} commit(s)? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing sent")
                return 0
        fields.update(cascade=True, scope=[c.task_id for c in scope])
    control_id = store.enqueue_control(run_id, "rollback", source="cli", **fields)
    _say_queued(run_id, f"queued rollback{' --cascade' if args.cascade else ''} of {args.task_id} for run {run_id} "
                        f"(control {control_id})")
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, open_run_store

    fields = {}
    for flag, key, value in (("--mission-usd", "mission_usd", args.mission_usd), ("--retry-usd", "retry_usd", args.retry_usd)):
        if value is None:
            continue
        if not 0 < value < float("inf"):  # also refuses nan
            raise UserError(f"budget {flag}: {value:g} is not a positive number of dollars")
        fields[key] = value
    if not fields:
        raise UserError("budget: give --mission-usd and/or --retry-usd")
    try:
        store, run_id = open_run_store(args.target, args.runs_dir, store_url_of(args))
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    control_id = store.enqueue_control(run_id, "budget", source="cli", **fields)
    _say_queued(run_id, f"queued budget for run {run_id} (control {control_id})")
    return 0
