"""Pilot tests of issue 21's last keys work: ``C`` (bulk cancel) at 80x24 and 200x55, and the
render work a screen switch or a tick no longer repeats (the table's kept cells, the footer
that is not rebuilt, the detail screen built once). No timings: what is counted is work
(cells rendered through Rich, widgets mounted), which a regression multiplies.

Real SQLite store and git repository from conftest, the real HybridApp, and the pilot's
FakeCoordinator applying ``cancel`` as ``Scheduler.cancel`` does (the real coordinator's
``cancel`` is tested in tests/runtime/test_operations.py).
"""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from hybrid_tui.store import models as m
from hybrid_tui.tui.app import HybridApp
from hybrid_tui.tui.fast_table import StableFooter, TaskTable
from hybrid_tui.tui.panes.tasks import TaskQueue
from hybrid_tui.tui.screens import ConfirmScreen, HelpScreen, TaskDetailScreen

from .conftest import FIXED, RUN_ID, make_app, select_task
from .test_pilot import FakeCoordinator, controls, screen_text, until

pytestmark = pytest.mark.anyio
SIZES = [(80, 24), (200, 55)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def mark(pilot, *task_ids: str) -> None:
    for task_id in task_ids:
        await select_task(pilot, task_id)
        await pilot.press("space")


def status_cell(app, task_id: str) -> str:
    return app.query_one("#task-table").get_cell(task_id, "status").plain


# ------------------------------------------------------------------ C: bulk cancel
@pytest.mark.parametrize("size", SIZES)
async def test_C_cancels_the_marked_tasks_after_showing_what_stops(demo_store, size):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=size, notifications=True) as pilot:
        # T2-model runs (T9-tests waits on it), T7-cli is ready, T1-setup is done.
        await mark(pilot, "T1-setup", "T2-model", "T7-cli")
        pane = app.query_one(TaskQueue)
        assert pane.marked == {"T1-setup", "T2-model", "T7-cli"}
        await pilot.press("C")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Cancel 2 task(s) and stop 1 dependent(s)?" in screen_text(app)  # the title, at any size
        body = app.screen.body.plain
        assert "Cancel 2 marked task(s), stopping 1 running attempt(s)" in body
        assert "T2-model  (running)" in body and "T7-cli  (ready)" in body
        assert "Their 1 unfinished dependent(s) stop too" in body and "T9-tests  (pending)" in body
        assert "Left as they are (1" in body and "T1-setup" in body
        # T4-ui (failed) and T5-docs (blocked) depend on T2-model but nothing changes for them.
        assert "T4-ui" not in body and "T5-docs" not in body
        await pilot.press("n")
        assert controls() == [] and pane.marked == {"T1-setup", "T2-model", "T7-cli"}
        await pilot.press("C", "y")
        # One durable control per task, through the same path as every key.
        assert controls() == [("cancel", {"task_id": "T2-model"}, "tui"), ("cancel", {"task_id": "T7-cli"}, "tui")]
        assert not pane.marked
        await until(pilot, lambda: status_cell(app, "T2-model") == "cancelled" and status_cell(app, "T7-cli") == "cancelled",
                    "the marked tasks show cancelled")
        await until(pilot, lambda: status_cell(app, "T9-tests") == "blocked", "the dependent shows blocked")
        assert status_cell(app, "T1-setup") == "done"


@pytest.mark.parametrize("size", SIZES)
async def test_C_with_nothing_marked_cancels_the_selected_tasks_dependents(demo_store, size):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=size, notifications=True) as pilot:
        await select_task(pilot, "T2-model")
        await pilot.press("C")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Cancel the dependents of T2-model?" in screen_text(app)
        body = app.screen.body.plain
        assert "T4-ui" in body and "T9-tests" in body and "T5-docs" in body
        await pilot.press("y")
        assert controls() == [("cancel_dependents", {"task_id": "T2-model"}, "tui")]
        await until(pilot, lambda: status_cell(app, "T9-tests") == "cancelled", "dependents cancelled")
        assert status_cell(app, "T2-model") == "running"


async def test_C_marked_tasks_that_cannot_be_cancelled_send_nothing(demo_store):
    app = make_app(demo_store, coordinator=FakeCoordinator(demo_store), poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await mark(pilot, "T1-setup", "T4-ui")  # done and failed
        await pilot.press("C")
        assert not isinstance(app.screen, ConfirmScreen)
        assert controls() == []
        assert any("none of the 2 marked task(s) can be cancelled" in n for n in app.notices)


@pytest.mark.parametrize("size", SIZES)
async def test_C_is_refused_before_asking_when_the_coordinator_is_lost(demo_store, size):
    app = make_app(demo_store, poll_interval=0.05)  # attached: the run's heartbeat says who drives it
    async with app.run_test(size=size, notifications=True) as pilot:
        await mark(pilot, "T7-cli")
        with m.Run._meta.database.atomic():
            m.Run.update(heartbeat_at=FIXED - 30).where(m.Run.id == RUN_ID).execute()
        await until(pilot, lambda: app.coordinator_lost, "the console sees the coordinator lost")
        await pilot.press("C")
        assert not isinstance(app.screen, ConfirmScreen)  # no question nobody would act on
        assert controls() == []
        assert any(n.startswith("cancel 1 marked task(s): not sent") and "coordinator is gone" in n for n in app.notices)


async def test_C_on_a_read_only_console_sends_nothing_and_is_not_offered(demo_store):
    app = HybridApp(demo_store, RUN_ID, clock=lambda: FIXED, read_only=True)
    app.animation_level = "none"
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await mark(pilot, "T7-cli")
        await pilot.press("C")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert controls() == []
        assert "Cancel marked tasks" not in [c.title for c in app.get_system_commands(app.screen)]


async def test_C_is_in_the_palette_and_the_help(demo_store):
    app = make_app(demo_store, coordinator=FakeCoordinator(demo_store))
    async with app.run_test(size=(200, 55)) as pilot:
        await pilot.pause()
        assert "Cancel marked tasks" in [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert any(key == "C" and "cancel the marked tasks" in text for key, text in app.screen.keys)
        assert "cancel the marked tasks" in screen_text(app)


# ------------------------------------------------------------------ work a screen switch no longer repeats
async def test_the_tables_cells_survive_a_screen_switch_and_a_tick_renders_only_what_changed(demo_store):
    app = make_app(demo_store, poll_interval=3600)  # polls by hand
    async with app.run_test(size=(200, 55)) as pilot:
        await until(pilot, lambda: "Tasks 9/9" in screen_text(app), "the first frame")
        table = app.query_one(TaskTable)
        visible_cells = table.row_count * len(table.columns)
        before = table.cells_rendered
        assert before >= visible_cells  # every cell on screen was rendered once
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "the detail")
        # While the detail is open a tick changes one cell of a row off the cursor: DataTable
        # bumps its update count, which keys its own cell cache.
        with demo_store.write(RUN_ID) as version:
            m.Task.update(status="ready", version=version).where(m.Task.task_id == "T9-tests").execute()
        app.poll_now()
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0], "the dashboard")
        assert "ready" in screen_text(app)  # painted again, with the change
        assert status_cell(app, "T9-tests") == "ready"
        # Only the changed cell (and the time cell that moves with it) is rendered again, not
        # the 81 on screen.
        assert table.cells_rendered - before <= 2, table.cells_rendered - before


async def test_a_screen_switch_rebuilds_no_footer_and_the_detail_screen_is_built_once(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "palette" in screen_text(app), "the footer")
        await select_task(pilot, "T4-ui")
        footer = app.screen.query_one(StableFooter)
        keys_before = list(footer.query(FooterKey))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "the detail")
        detail = app.screen
        assert "Build the" in screen_text(app) and detail.query(FooterKey)  # its keys from the first frame
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0], "the dashboard")
        await pilot.pause()
        # The same FooterKey widgets: the footer was not unmounted and mounted again.
        assert list(footer.query(FooterKey)) == keys_before
        await select_task(pilot, "T6-merge")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "the detail again")
        assert app.screen is detail  # the one detail screen, now about another task
        assert detail.task_id == "T6-merge"
        await until(pilot, lambda: "Merge config" in screen_text(app), "the second task's detail")
        assert "Build the" not in screen_text(app)
        # Detail → dependency tree → detail: a second detail on the stack, not the same one twice.
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen) and app.screen is not detail,
                    "a detail over the tree")


async def test_a_tick_that_changes_no_pane_text_lays_out_nothing(demo_store):
    """Static.update re-lays out the whole screen: the side panes and the summary line are
    updated only when their text changed (a busy run changes the run row every tick)."""
    app = make_app(demo_store, poll_interval=3600)
    async with app.run_test(size=(200, 55)) as pilot:
        await until(pilot, lambda: "Tasks 9/9" in screen_text(app), "the first frame")
        cost_text = app.costs_pane.query_one("#cost-text")
        shown = (app.resources_pane.content, cost_text.content, app.summary_line.content)
        with demo_store.write(RUN_ID) as version:  # the run's version moves: the panes are shown again
            m.Task.update(title="More tests!", version=version).where(m.Task.task_id == "T9-tests").execute()
        delta = app.poll_now()
        assert delta is not None and delta.run_changed
        await pilot.pause()
        assert not app.screen._layout_required
        assert (app.resources_pane.content, cost_text.content, app.summary_line.content) == shown
        assert app.resources_pane.content is shown[0] and cost_text.content is shown[1]
        assert "More tests!" in screen_text(app)
