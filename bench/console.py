"""Console refresh tick and resident memory (room: bench; drives the tui app over a real store).

Refresh tick: a run of N tasks on a SQLite file, the real ``HybridApp`` mounted headless
(``App.run_test``) with its first poll done (every row shown). Each round rewrites ALL N
task rows in one store transaction (status and version change, as a busy run would), then
times one tick: ``app.poll_now()`` = ``StoreView.poll`` (rows changed since the last
version seen) + applying the diff to the panes inside ``batch_update``. Reported with and
without the repaint that follows. Baseline: raw ``sqlite3`` selecting the same changed rows
(the least any tick has to read).

Key to screen (issue 21): on the same mounted app, the time from a key press to the first
frame of the screen it leads to, as the terminal gets it: Textual's own frame (the app's
``_display``, where a terminal driver writes), encoded to the terminal's bytes here since
the headless driver writes none (:class:`FrameClock`). Escape out of the task detail, Enter
into it, ctrl+p to the palette; the time until the screen settles (the last frame before
the app goes idle: the palette's command list fills in after its first frame) is a note.

Tick + repaint: the same clock from a poll that changed every row to the frame painted
with them.

Idle CPU: an unchanging run (nothing writes), the app polling at its real interval (0.5 s)
for a fixed wall-clock window: the process's CPU time over that window, in % of one core.

Memory: a fresh subprocess builds the store with N tasks, constructs the coordinator and
its scheduler (from the store, as a run starts), mounts the app and polls once; its RSS
(psutil) is compared with the same process right after the imports.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import core_bench
from .common import Figure, median, percentile
from .scheduling import RUN_ID, create_bench_run, mission_of

TICK_BUDGET_MS = {1_000: 16.0, 10_000: 50.0}
PAINT_BUDGET_MS = {1_000: 33.0}  # tick + repaint (DESIGN.md)
KEY_BUDGET_MS = {1_000: 50.0}  # p95 key to screen (DESIGN.md)
IDLE_CPU_BUDGET_PERCENT = 2.0
IDLE_SECONDS = 10.0
MEMORY_BUDGET_MB = 200.0
SIZE = (160, 48)
COST_REFRESH_SECONDS = 5.0  # StoreView.COST_REFRESH_SECONDS


def _rewrite_all(store, round_no: int) -> None:
    from hybrid_tui.store import models as m

    status = ("running", "validating")[round_no % 2]
    with store.write(RUN_ID) as version:
        m.Task.update(status=status, agent_id=f"agent-{round_no % 64:02}", updated_at=time.time(),
                      version=version).where(m.Task.run == RUN_ID).execute()


def _raw_select_ms(db_path: Path, since_version: int) -> float:
    conn = sqlite3.connect(db_path)
    try:
        start = time.perf_counter()
        rows = conn.execute("SELECT * FROM task WHERE run_id = ? AND version > ? ORDER BY id",
                            (RUN_ID, since_version)).fetchall()
        elapsed = (time.perf_counter() - start) * 1e3
    finally:
        conn.close()
    assert rows
    return elapsed


class FrameClock:
    """Records each frame the app hands its driver: (wall, CPU, screen), after encoding it
    as a terminal driver would (``CompositorUpdate.render_segments``)."""

    def __init__(self, app):
        from textual._compositor import CompositorUpdate

        self.frames: list[tuple[float, float, object]] = []
        display = app._display

        def timed_display(screen, renderable):
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
                self.frames.append((time.perf_counter(), time.process_time(), screen))
            return display(screen, renderable)

        app._display = timed_display

    def clear(self) -> None:
        self.frames.clear()

    def of(self, screen) -> list[tuple[float, float, object]]:
        return [f for f in self.frames if f[2] is screen]


async def _until_painted(pilot, clock: FrameClock, reached, what: str) -> list:
    """Pause until ``reached()`` and a frame of the app's screen, then until no more frames
    come (settled); the frames of that screen."""
    app = pilot.app
    for _ in range(400):
        if reached() and clock.of(app.screen):
            break
        await pilot.pause()
    else:
        raise RuntimeError(f"{what}: the screen was never painted")
    count = -1
    for _ in range(50):
        if len(clock.frames) == count:
            break
        count = len(clock.frames)
        await pilot.pause()
    return clock.of(app.screen)


async def _ticks(store, db_path: Path, rounds: int) -> dict:
    from hybrid_tui.store import models as m
    from hybrid_tui.tui.app import HybridApp

    app = HybridApp(store, RUN_ID, poll_interval=3600.0)  # ticks are driven by hand here
    frames = FrameClock(app)
    out: dict[str, list[float]] = {"tick": [], "tick_cpu": [], "tick_paint": [], "tick_paint_cpu": [], "poll": [],
                                   "raw": [], "costs": []}
    async with app.run_test(headless=True, size=SIZE) as pilot:
        await pilot.pause()
        shown = len(app.tasks_pane.cells)
        for i in range(rounds):
            before = m.Run.get_by_id(RUN_ID).version
            _rewrite_all(store, i)
            out["raw"].append(_raw_select_ms(db_path, before))
            gc.collect()
            await pilot.pause()
            frames.clear()
            start, cpu_start = time.perf_counter(), time.process_time()
            delta = app.poll_now()
            ticked, cpu_ticked = time.perf_counter(), time.process_time()
            out["tick_cpu"].append((cpu_ticked - cpu_start) * 1e3)  # the machine is shared: CPU is steadier
            painted = (await _until_painted(pilot, frames, lambda: True, "tick"))[0]
            out["tick"].append((ticked - start) * 1e3)
            out["tick_paint"].append((painted[0] - start) * 1e3)
            out["tick_paint_cpu"].append((painted[1] - cpu_start) * 1e3)
            if delta is None or len(delta.tasks) != shown:
                raise RuntimeError(f"tick saw {0 if delta is None else len(delta.tasks)} changed tasks, expected {shown}")
        # The read half alone (what StoreView.poll costs), after one more rewrite.
        for i in range(rounds):
            _rewrite_all(store, rounds + i)
            start = time.perf_counter()
            app.view.poll(time.time())
            out["poll"].append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            app.view.cost_summary(time.time())  # part of every poll that saw changed tasks
            out["costs"].append((time.perf_counter() - start) * 1e3)
        out["shown"] = [shown]
    return out


async def _keys_and_idle(store, presses: int, idle_seconds: float) -> dict:
    from textual.command import CommandPalette

    from hybrid_tui.tui.screens import TaskDetailScreen

    out: dict[str, list[float]] = {f"{key}{kind}": [] for key in ("escape", "detail", "palette")
                                   for kind in ("", "_cpu", "_settled_cpu")}
    app = _bench_app(store)
    frames = FrameClock(app)
    async with app.run_test(headless=True, size=SIZE) as pilot:
        await pilot.pause()

        async def timed(key: str, reached, name: str) -> None:
            gc.collect()
            await pilot.pause()
            frames.clear()
            start, cpu_start = time.perf_counter(), time.process_time()
            await pilot.press(key)
            shown = await _until_painted(pilot, frames, reached, key)
            out[name].append((shown[0][0] - start) * 1e3)
            # The machine is shared: CPU time is the steadier figure (no waiting for a core).
            out[name + "_cpu"].append((shown[0][1] - cpu_start) * 1e3)
            out[name + "_settled_cpu"].append((shown[-1][1] - cpu_start) * 1e3)

        for _ in range(presses):
            await timed("enter", lambda: isinstance(app.screen, TaskDetailScreen), "detail")
            await timed("escape", lambda: app.screen is app.screen_stack[0], "escape")
            await timed("ctrl+p", lambda: isinstance(app.screen, CommandPalette), "palette")
            await pilot.press("escape")
            await pilot.pause()
        # Idle: the real poll interval on a run nothing writes.
        app.poll_interval = 0.5
        app.set_timer(0.5, app._tick)
        await asyncio.sleep(1.0)  # settle: the first polls after the change
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle_seconds)
        out["idle_cpu_percent"] = [(time.process_time() - cpu) / (time.perf_counter() - wall) * 100]
    return out


def _bench_app(store):
    from hybrid_tui.tui.app import HybridApp

    return HybridApp(store, RUN_ID, poll_interval=3600.0)  # ticks driven by hand until the idle window


def measure_keys(n: int, presses: int, idle_seconds: float, seed: int = 1) -> dict:
    tasks = core_bench.random_dag(n, seed)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-keys-") as tmp:
        root = Path(tmp)
        store = create_bench_run(mission_of(tasks, root / "mission", 8), root / "run")
        try:
            return asyncio.run(_keys_and_idle(store, presses, idle_seconds))
        finally:
            store.close()


def measure_ticks(n: int, rounds: int, seed: int = 1) -> dict:
    tasks = core_bench.random_dag(n, seed)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-tui-") as tmp:
        root = Path(tmp)
        store = create_bench_run(mission_of(tasks, root / "mission", 8), root / "run")
        try:
            return asyncio.run(_ticks(store, root / "run" / "state.db", rounds))
        finally:
            store.close()


# ------------------------------------------------------------------ memory (subprocess)

def memory_probe(n: int, seed: int = 1) -> dict:
    """Runs in a fresh process: RSS after imports, then with store + coordinator + console."""
    import psutil

    from hybrid_tui.runtime.coordinator import Coordinator
    from hybrid_tui.tui.app import HybridApp

    proc = psutil.Process()
    gc.collect()
    baseline = proc.memory_info().rss
    tasks = core_bench.random_dag(n, seed)
    result: dict = {"tasks": n, "imports_rss": baseline}
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-mem-") as tmp:
        root = Path(tmp)
        mission = mission_of(tasks, root / "mission", 64)
        del tasks
        store = create_bench_run(mission, root / "run")
        coordinator = Coordinator(store, RUN_ID, mission, backend="sim", git=False, agents=64, seed=seed)
        coordinator._load_specs()
        coordinator._build_scheduler()
        result["coordinator_rss"] = proc.memory_info().rss

        async def mount() -> None:
            app = HybridApp(store, RUN_ID, poll_interval=3600.0)
            async with app.run_test(headless=True, size=SIZE) as pilot:
                await pilot.pause()
                result["rows_shown"] = len(app.tasks_pane.cells)
                gc.collect()
                result["total_rss"] = proc.memory_info().rss

        asyncio.run(mount())
        store.close()
        assert coordinator.scheduler is not None
    return result


def measure_memory(n: int) -> dict:
    code = f"import json; from bench.console import memory_probe; print(json.dumps(memory_probe({n})))"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, *, seed: int = 1) -> tuple[list[Figure], dict]:
    sizes = (100, 300) if quick else (1_000, 10_000)
    figures: list[Figure] = []
    details: dict = {}
    for n, budget in zip(sizes, TICK_BUDGET_MS.values()):
        r = measure_ticks(n, 2 if quick else (7 if n <= 1_000 else 5), seed)
        details[f"ticks_{n}"] = r
        figures += [
            Figure("console", f"refresh tick, {n:,} tasks changing, median", median(r["tick"]), "ms",
                   median(r["raw"]), "raw sqlite3 SELECT of them", budget, f"<= {budget:.0f} ms",
                   note=f"CPU time of the tick {median(r['tick_cpu']):.1f} ms; "
                        f"StoreView.poll alone {median(r['poll']):.1f} ms, of which cost_summary "
                        f"{median(r['costs']):.1f} ms (recomputed only when attempts or a task's standing change, "
                        f"or every {COST_REFRESH_SECONDS:.0f} s); the rest is the panes' apply"),
            Figure("console", f"refresh tick, {n:,} tasks changing, p95", percentile(r["tick"], 95), "ms",
                   percentile(r["raw"], 95), "raw sqlite3 SELECT of them"),
            Figure("console", f"tick + repaint, {n:,} tasks changing, median", median(r["tick_paint"]), "ms",
                   median(r["raw"]), "raw sqlite3 SELECT of them", PAINT_BUDGET_MS.get(n),
                   f"<= {PAINT_BUDGET_MS[n]:.0f} ms" if n in PAINT_BUDGET_MS else "",
                   note=f"poll to the frame painted with the changed rows (encoded for the terminal); CPU time "
                        f"median {median(r['tick_paint_cpu']):.1f} ms, p95 {percentile(r['tick_paint_cpu'], 95):.1f} ms"),
        ]
        k = measure_keys(n, 3 if quick else 20, 2.0 if quick else IDLE_SECONDS, seed)
        details[f"keys_{n}"] = k
        key_budget = KEY_BUDGET_MS.get(n)
        for key, label in (("escape", "Escape out of the detail"), ("detail", "Enter: open the detail"),
                           ("palette", "ctrl+p: the palette")):
            figures.append(Figure("console", f"key to screen, {label}, {n:,} tasks, p95", percentile(k[key], 95), "ms",
                                  budget=key_budget, budget_text=f"<= {key_budget:.0f} ms" if key_budget else "",
                                  note=f"median {median(k[key]):.1f} ms over {len(k[key])} presses; CPU time p95 "
                                       f"{percentile(k[key + '_cpu'], 95):.1f} ms, median {median(k[key + '_cpu']):.1f} ms; "
                                       f"until the screen settles, CPU p95 {percentile(k[key + '_settled_cpu'], 95):.1f} ms"))
        figures.append(Figure("console", f"idle CPU, unchanging run, {n:,} tasks", k["idle_cpu_percent"][0], "% core",
                              budget=IDLE_CPU_BUDGET_PERCENT, budget_text=f"<= {IDLE_CPU_BUDGET_PERCENT:.0f} %",
                              note=f"process CPU time over {2.0 if quick else IDLE_SECONDS:.0f} s of polling every 0.5 s"))
    mem_n = 500 if quick else 10_000
    mem = measure_memory(mem_n)
    details["memory"] = mem
    mb = 1024 * 1024
    figures.append(Figure("console", f"RSS coordinator + console, {mem_n:,} tasks", mem["total_rss"] / mb, "MB",
                          mem["imports_rss"] / mb, "same process after imports", MEMORY_BUDGET_MB, "< 200 MB",
                          note=f"after store + coordinator/scheduler: {mem['coordinator_rss'] / mb:.0f} MB; "
                               f"{mem['rows_shown']:,} rows in the task table"))
    return figures, details


if __name__ == "__main__":
    from .common import render_table

    figs, _ = run()
    print(render_table(figs))
