"""The console's share of the forecast and the wait reasons: the ETA in the header, and in
a waiting task's detail which task holds its file (all read from the store)."""

from __future__ import annotations

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.tui.screens.detail import TaskDetailScreen

from .conftest import FIXED, RUN_ID, make_app, select_task
from .test_pilot import screen_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_header_shows_the_forecast_finish_and_detail_shows_the_lock_holder(demo_store):
    with demo_store.write(RUN_ID):
        # T7-cli is ready and declares cli.py; T2-model (running) holds it.
        m.FileLock.update(task_id="T2-model").where(m.FileLock.path == "cli.py").execute()
        m.Forecast.insert(run=RUN_ID, ts=FIXED, kind="start", remaining_seconds=3600, low_seconds=3000,
                          high_seconds=4500, tasks_left=5).execute()
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await pilot.pause()
        # The conftest pins TZ=UTC: FIXED is 22:13:20, so the finish is 23:13 (23:03-23:28).
        assert "ETA 23:13 (23:03–23:28)" in screen_text(app)
        await select_task(pilot, "T7-cli")
        await pilot.press("enter")
        assert isinstance(app.screen, TaskDetailScreen)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert "cli.py held by task T2-model" in next(line for line in lines if " waiting " in line)
        assert "10 min; ran 0s" in next(line for line in lines if " estimate " in line)
