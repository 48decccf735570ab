"""Defects found by driving the console in tmux (80x24, 120x40, 200x55) on the quickstart,
the demo, scale-200 and an attached console, each pinned here with the pilot: frozen clock,
no animations, the conftest's real SQLite store and git repository.

What they have in common: text cut so it misleads (a header that said "runni…", a summary
line ending in "w:", ids cut to "perf-agents…" in the side panes and to 14 characters in
the attention view), footers offering keys that do nothing on that screen, a budget raised
that the header did not show, and R offering to retry tasks that are done.
"""

from __future__ import annotations

import pytest

from hybrid_tui.store import models as m

from .conftest import FIXED, RUN_ID, make_app, select_task
from .test_pilot import FakeCoordinator, controls, screen_text, until

pytestmark = pytest.mark.anyio
SIZES = [(80, 24), (200, 55)]
LONG_RUN_ID_MISSION = "inventory-quickstart"  # with the run id, as long as a real run's header


@pytest.fixture
def anyio_backend():
    return "asyncio"


def with_forecast(store) -> None:
    with store.write(RUN_ID):
        m.Forecast.insert(run=RUN_ID, ts=FIXED, kind="start", remaining_seconds=3600, low_seconds=3000,
                          high_seconds=4500, tasks_left=5).execute()


def header_lines(app) -> list[str]:
    return screen_text(app).splitlines()[:2]


# ------------------------------------------------------------------ the header
@pytest.mark.parametrize("size", SIZES)
async def test_header_keeps_the_counts_and_the_eta_range_whole(demo_store, size):
    """At 80 columns line 1 read "done 2/9 · runni…" (the run id kept, the counts cut) and
    line 2 "ETA 23:13 (23:03–…" next to 20 empty columns (it was a second row of the grid
    whose other column held the attention label)."""
    with_forecast(demo_store)
    with demo_store.write(RUN_ID):
        m.Run.update(mission_name=LONG_RUN_ID_MISSION + "-20261204-075848").where(m.Run.id == RUN_ID).execute()
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        first, second = header_lines(app)
        assert "done 2/9 · running 1" in first and "needs attention: 3" in first
        assert "ETA 23:13 (23:03–23:28)" in second


async def test_header_fits_again_after_a_resize(demo_store):
    with_forecast(demo_store)
    app = make_app(demo_store)
    async with app.run_test(size=(200, 55)) as pilot:
        await pilot.pause()
        assert "run-demo" in header_lines(app)[0]
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        first, second = header_lines(app)
        assert "running 1" in first and "needs attention: 3" in first
        await pilot.resize_terminal(200, 55)
        await pilot.pause()
        assert "run-demo" in header_lines(app)[0]  # the run id comes back when there is room


# ------------------------------------------------------------------ the compact summary line
async def test_the_summary_line_never_ends_in_a_cut_hint(demo_store):
    """80x24: "pool 4 live/target 4 · cpu 90% mem 3% disk 23% · $0.03/$3.00 · locks 8 · w:"."""
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if line.lstrip().startswith("pool "))
        assert line.rstrip().endswith("w: more")
        assert "$0.00/$1.50" in line or "$1.03/$1.50" in line
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if line.lstrip().startswith("pool "))
        assert "cpu 53% mem 66% disk 72%" in line and line.rstrip().endswith("w: more")
