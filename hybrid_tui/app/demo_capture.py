"""Capturing the demo's key moments deterministically, and rendering them as SVG.

Room: app (drives a real Coordinator on a real repository; the rendering step only
opens the console on *copies* of the store). Nothing here races a live worker:

- the implementer is the replay backend behind a gate: every attempt parks before doing
  anything until the driver releases it, one at a time, oldest dispatch first;
- the clock is virtual and moves only between steps, so every timestamp is fixed;
- the resource monitor is a stand-in writing fixed gauge readings (psutil would differ
  from machine to machine), and git dates and identities are pinned (commit ids repeat);
- the time forecast is computed on the loop and timed by the virtual clock (the header's
  ETA repeats);
- the clock moves first and the driver waits for what that alone brings (a forecast, a
  backoff elapsing) before it releases an agent, so their events keep one order;
- after each step the driver waits until the coordinator is quiet (two loop turns after
  the step, every running attempt parked at the gate, nothing integrating), then checks
  the store for a key moment and copies the SQLite file (backup API) when one is reached.

Moments: ``start`` (first dispatch), ``locks`` (a ready task waits for a file another task
holds), ``retry`` (a task on its second attempt after a failure), ``conflict`` (a task
failed and needs attention: shown in the attention view), ``done`` (the run finished).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import anyio

from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.agents.replay import ReplayImplementer
from hybrid_tui.app.demo_mission import demo_mission_path
from hybrid_tui.app.launch import start_run
from hybrid_tui.runtime.forecasting import RunForecaster
from hybrid_tui.store import queries, writes
from hybrid_tui.store.db import open_store
from hybrid_tui.store.records import TaskRecord
from hybrid_tui.store.runs import copy_sqlite_store, move_run_start
from hybrid_tui.tui.app import HybridApp

RUN_ID = "demo-web-18"
START = 1_760_000_000.0  # the virtual clock's first reading
STEP_SECONDS = 45.0  # virtual time between two released attempts
MOMENTS = ("start", "locks", "retry", "conflict", "done")
PINNED_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hybrid-tui demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "hybrid-tui demo", "GIT_COMMITTER_EMAIL": "demo@example.com",
    "GIT_AUTHOR_DATE": "2025-10-09T09:00:00+0000", "GIT_COMMITTER_DATE": "2025-10-09T09:00:00+0000",
    "TZ": "UTC",
}
# What makes the mission's tools print differently on another machine, and so moves the tail
# of a validation failure that a moment's event pane shows: pytest prints more on CI (CI,
# BUILD_NUMBER: it stops truncating), takes options and colours from the environment, and
# sizes its lines to COLUMNS.
PINNED_TOOL_ENV = {"COLUMNS": "80"}
UNSET_TOOL_ENV = ("CI", "BUILD_NUMBER", "PYTEST_ADDOPTS", "FORCE_COLOR", "PY_COLORS", "NO_COLOR")
SCREEN_SIZE = (160, 42)


@dataclass
class Moment:
    name: str
    db_path: Path  # a copy of the store at that moment
    now: float  # the virtual clock then
    run_id: str = RUN_ID

    @property
    def screen(self) -> str:
        return "attention" if self.name == "conflict" else "dashboard"

    @property
    def size(self) -> tuple[int, int]:
        """Terminal size of its screenshot: the attention view is a short list."""
        return (SCREEN_SIZE[0], 12) if self.screen == "attention" else SCREEN_SIZE


class VirtualClock:
    def __init__(self, start: float = START):
        self.now = start

    def __call__(self) -> float:
        return self.now


class GatedImplementer:
    """The replay backend, but each attempt waits for :meth:`release` before it starts."""

    name = "replay"

    def __init__(self) -> None:
        self.inner = ReplayImplementer(pace=0.0)
        self.waiting: dict[str, anyio.Event] = {}

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        gate = anyio.Event()
        self.waiting[request.task.task_id] = gate
        try:
            await gate.wait()
        finally:
            self.waiting.pop(request.task.task_id, None)
        return await self.inner.implement(request)

    def release(self, task_id: str) -> None:
        self.waiting[task_id].set()


class FixedGauges:
    """Stands in for the resource monitor: one made-up, repeatable reading per clock value."""

    def __init__(self, coordinator: Any):
        self.c = coordinator
        self.turns = 0
        self._last = None

    async def tick(self, now: float) -> None:
        self.turns += 1
        if now == self._last:
            return
        self._last = now
        k = int((now - START) // STEP_SECONDS)
        with self.c.store.write(self.c.run_id):
            writes.add_resource_sample(self.c.run_id, now, dict(
                cpu_percent=35 + (k * 7) % 40, memory_percent=48 + (k * 3) % 12, disk_percent=61.0,
                disk_free_bytes=84 * 1024**3, repo_disk_percent=61.0, coordinator_rss_bytes=(88 + k % 9) * 1024**2,
                open_files=40 + k % 5, tasks_json="{}",
            ))

    def close(self) -> None:
        pass


@contextlib.contextmanager
def pinned_environment() -> Iterator[None]:
    """Git's identities and dates and the validation tools' output made the same on every
    machine, for the capture; the environment as it was afterwards."""
    pinned = {**PINNED_GIT_ENV, **PINNED_TOOL_ENV}
    saved = {k: os.environ.get(k) for k in (*pinned, *UNSET_TOOL_ENV)}
    os.environ.update(pinned)
    for key in UNSET_TOOL_ENV:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------- driving


def capture_moments(workdir: str | Path, mission: str | Path | None = None) -> list[Moment]:
    """Run the demo mission step by step in ``workdir``; return a store copy per moment."""
    return anyio.run(_capture, Path(workdir), mission)


async def _capture(workdir: Path, mission: str | Path | None) -> list[Moment]:
    workdir.mkdir(parents=True, exist_ok=True)
    gate, clock = GatedImplementer(), VirtualClock()
    with pinned_environment():
        store, run_id, c = start_run(demo_mission_path(mission), workdir / "runs", "replay", run_id=RUN_ID, clock=clock)
        c.implementer = gate
        c.monitor = FixedGauges(c)
        c.forecaster = RunForecaster(c, clock=clock, threaded=False)  # on the virtual clock: repeatable ETAs
        move_run_start(store, run_id, START)  # creation used the wall clock: move it onto the virtual one
        db_path = Path(c.run_dir) / "state.db"
        moments: list[Moment] = []
        try:
            async with anyio.create_task_group() as tg:
                finished = anyio.Event()

                async def run() -> None:
                    try:
                        await c.run()
                    finally:
                        finished.set()

                tg.start_soon(run)
                while True:
                    await _settle(c, gate, finished)
                    _check_moments(c, clock, db_path, workdir, moments, finished.is_set())
                    if finished.is_set():
                        break
                    clock.now += STEP_SECONDS
                    # Let what the clock alone brings (a forecast, a backoff elapsing) land
                    # before an agent finishes, so their events never race in the store.
                    await _settle(c, gate, finished)
                    if gate.waiting:
                        gate.release(min(gate.waiting, key=lambda t: c.running[t].dispatch_seq))
        finally:
            store.close()
    return moments


async def _settle(c: Any, gate: GatedImplementer, finished: anyio.Event) -> None:
    """Wait until the coordinator is quiet: the store unchanged over two full loop turns, the
    pool at its target, every running attempt parked. (Counting loop turns from the last store
    change, not from the call, keeps a machine under load from catching it mid-step.)"""
    stable = 0
    version, turns = None, c.monitor.turns
    while not finished.is_set():
        await anyio.sleep(0.02)
        current = queries.run_version(c.run_id)
        if current != version:
            version, turns = current, c.monitor.turns
        quiet = (
            c.monitor.turns >= turns + 2
            and c.is_quiet()
            and all(task_id in gate.waiting for task_id in c.running)
        )
        stable = stable + 1 if quiet else 0
        if stable >= 3:
            return


def _check_moments(c: Any, clock: VirtualClock, db_path: Path, workdir: Path, moments: list[Moment], done: bool) -> None:
    seen = {mo.name for mo in moments}
    reached: list[str] = []
    tasks = queries.task_records(c.run_id)
    if "start" not in seen and any(t.status == "running" for t in tasks):
        reached.append("start")
    if "locks" not in seen and "start" in seen and _lock_contention(c.run_id, tasks):
        reached.append("locks")
    if "retry" not in seen and any(t.attempts >= 2 and t.status == "running" for t in tasks):
        reached.append("retry")
    if "conflict" not in seen and any(t.status == "failed" for t in tasks):
        reached.append("conflict")
    if done:
        reached.append("done")
    for name in reached:
        if name == "locks" and len(reached) > 1:
            continue  # contention gets a screen of its own, not one another moment already shows
        target = workdir / f"moment-{len(moments) + 1:02d}-{name}.db"
        copy_sqlite_store(db_path, target)
        moments.append(Moment(name, target, clock.now, c.run_id))


def _lock_contention(run_id: str, tasks: list[TaskRecord]) -> bool:
    held = queries.lock_holders(run_id)
    waiting = {t.task_id for t in tasks if t.status == "ready"}
    return any(
        path in held and held[path] != task_id
        for task_id, path in queries.file_operation_paths(run_id, waiting)
    ) if waiting and held else False


# ---------------------------------------------------------------------- rendering


def moment_app(moment: Moment, theme: str = "dark") -> Any:
    """The console on a moment's store copy with the clock frozen there (no coordinator).

    Opens the store copy: call only when no other store is open in this process."""
    store = open_store(moment.db_path, create=False)
    app = HybridApp(store, moment.run_id, theme=theme, clock=lambda: moment.now, poll_interval=3600)
    app.animation_level = "none"
    return app


async def render_svg(moment: Moment, size: tuple[int, int] | None = None) -> str:
    app = moment_app(moment)
    try:
        async with app.run_test(size=size or moment.size) as pilot:
            await pilot.pause()
            if moment.screen == "attention":
                await pilot.press("a")
                await pilot.pause()
            await pilot.pause()
            return app.export_screenshot(title=f"hybrid-tui demo: {moment.name}")
    finally:
        app.store.close()


def save_screenshots(dest: str | Path, mission: str | Path | None = None, workdir: str | Path | None = None) -> list[Path]:
    """Capture the moments and write ``dest/demo-<n>-<moment>.svg``; returns the paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hybrid-demo-capture-") as tmp:
        moments = capture_moments(Path(workdir) if workdir else Path(tmp), mission)
        paths = []
        with utc_clock_display():
            for index, moment in enumerate(moments, 1):
                svg = anyio.run(render_svg, moment)
                path = dest / f"demo-{index}-{moment.name}.svg"
                path.write_text(svg, encoding="utf-8")
                paths.append(path)
    return paths


@contextlib.contextmanager
def utc_clock_display() -> Iterator[None]:
    """Event times rendered in UTC, so a screenshot does not depend on the machine's zone."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
