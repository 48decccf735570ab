"""The ``demo`` walkthrough: the web-18 sample mission, offline, at a watchable pace; and the
README's screenshots of its key moments.

Room: app. Starts a run of a sample mission (replay backend) into a temporary or given
runs folder and hands it to the console or headless mode. ``python -m
hybrid_tui.app.demo --screenshots DIR`` drives the same mission step by step (a gated
implementer and a frozen clock, see :mod:`hybrid_tui.app.demo_capture`) and saves an SVG
of the console at each key moment: start, lock contention, a retry, the conflict in the
attention view, completion.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hybrid_tui.app.demo_capture import save_screenshots
from hybrid_tui.app.demo_mission import DemoError, demo_mission_path
from hybrid_tui.app.drive import drive_run
from hybrid_tui.app.launch import LaunchError, load_valid_mission, start_run

TARGET_SECONDS = 70.0  # the pace estimate; locks and validation add about a third on top


def watchable_pace(mission, target_seconds: float = TARGET_SECONDS) -> float:
    """The pace at which the mission's recorded (else estimated) durations take about
    ``target_seconds``: the longer of the dependency chain and the work spread over the pool."""
    seconds: dict[str, float] = {}
    for task in mission.tasks:
        recorded = mission.recorded.get(task.task_id)
        if recorded is not None:
            seconds[task.task_id] = sum(a.duration_seconds or task.estimated_duration_minutes * 60 for a in recorded.attempts)
        else:
            seconds[task.task_id] = task.estimated_duration_minutes * 60
    finish: dict[str, float] = {}

    def chain(task_id: str, seen: frozenset[str] = frozenset()) -> float:
        if task_id not in finish:
            deps = [d for d in mission.task(task_id).dependencies if d in seconds and d not in seen]
            finish[task_id] = seconds[task_id] + max((chain(d, seen | {task_id}) for d in deps), default=0.0)
        return finish[task_id]

    critical = max((chain(t) for t in seconds), default=0.0)
    pool = max(1, mission.config.agents.min_implementers)
    work = max(critical, sum(seconds.values()) / pool)
    return target_seconds / work if work > 0 else 0.0


def run_demo(*, pace: float | None = None, headless: bool = False, runs_dir: str | Path | None = None,
             mission: str | Path | None = None, theme: str = "dark", store_url: str | None = None) -> int:
    path = demo_mission_path(mission)
    try:
        loaded = load_valid_mission(path)
    except LaunchError as exc:
        raise DemoError(str(exc)) from None
    if pace is None:
        pace = watchable_pace(loaded)
    if pace < 0:
        raise DemoError(f"--pace must not be negative (got {pace})")
    if runs_dir is None:
        runs_dir = Path(tempfile.mkdtemp(prefix="hybrid-demo-"))
    try:
        store, run_id, coordinator = start_run(path, runs_dir, "replay", pace=pace, store_url=store_url)
    except LaunchError as exc:
        raise DemoError(str(exc)) from None
    print(f"hybrid-tui demo: {loaded.name} ({len(loaded.tasks)} tasks) at pace {pace:.3g}, run folder "
          f"{coordinator.run_dir}", file=sys.stderr)
    return drive_run(store, run_id, coordinator, headless=headless, theme=theme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid_tui.app.demo")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="save SVGs of the key moments to DIR")
    parser.add_argument("--mission", type=Path, help="mission folder (default: web-18)")
    args = parser.parse_args(argv)
    if args.screenshots is None:
        return run_demo(mission=args.mission)
    for path in save_screenshots(args.screenshots, mission=args.mission):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
