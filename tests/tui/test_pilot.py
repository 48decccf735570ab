"""Pilot tests: each key reaches the control table, and a (fake, minimal) coordinator that
applies the commands makes the screen change accordingly."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from rich.console import Console

from hybrid_tui.store import models as m
from hybrid_tui.tui.panes.tasks import TaskQueue
from hybrid_tui.tui.screens import AttentionScreen, ConfirmScreen, HelpScreen, TaskDetailScreen

from .conftest import RUN_ID, make_app, select_task

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class FakeCoordinator:
    """Reads pending controls and applies them the way the real coordinator's contract says."""

    def __init__(self, store):
        self.store = store
        self.stop_requested = False
        self.applied: list[tuple[str, dict]] = []

    def request_stop(self) -> None:
        self.stop_requested = True

    async def run(self) -> int:
        while not self.stop_requested:
            for control in self.store.pending_controls(RUN_ID):
                self.apply(control)
            await asyncio.sleep(0.01)
        with self.store.write(RUN_ID):
            m.Run.update(status="stopped").where(m.Run.id == RUN_ID).execute()
        return 3

    def apply(self, control: m.Control) -> None:
        args = json.loads(control.args_json)
        status, result = "applied", ""
        with self.store.write(RUN_ID) as version:
            command = control.command
            if command == "pause":
                m.Run.update(status="paused", pause_reason=f"paused by operator ({args.get('reason')})").where(m.Run.id == RUN_ID).execute()
            elif command == "resume":
                m.Run.update(status="running", pause_reason="").where(m.Run.id == RUN_ID).execute()
            elif command == "retry":
                m.Task.update(status="ready", attention_reason="", version=version).where(
                    (m.Task.run == RUN_ID) & (m.Task.task_id == args["task_id"])).execute()
            elif command == "cancel":  # Scheduler.cancel: the task, then its queued dependents blocked
                task = m.Task.get((m.Task.run == RUN_ID) & (m.Task.task_id == args["task_id"]))
                if task.status not in ("pending", "awaiting_approval", "ready", "retry_wait", "blocked", "running",
                                       "validating"):
                    status, result = "rejected", f"task {task.task_id} is {task.status}"
                else:
                    m.Task.update(status="cancelled", version=version).where(m.Task.id == task.id).execute()
                    downstream, frontier = [], [task.task_id]
                    while frontier:
                        ids = [d.task_id for d in m.Dependency.select().where(m.Dependency.depends_on.in_(frontier))]
                        frontier = [i for i in ids if i not in downstream]
                        downstream += frontier
                    m.Task.update(status="blocked", version=version).where(
                        m.Task.task_id.in_(downstream) & m.Task.status.in_(("pending", "ready", "retry_wait"))).execute()
            elif command == "cancel_dependents":
                ids = [d.task_id for d in m.Dependency.select().where(m.Dependency.depends_on == args["task_id"])]
                m.Task.update(status="cancelled", version=version).where(m.Task.task_id.in_(ids)).execute()
            elif command == "rollback":
                status, result = "rejected", "later task T3-api touched app.py"
            elif command == "scale":
                m.Run.update(pool_target=args["size"]).where(m.Run.id == RUN_ID).execute()
            m.Control.update(status=status, result=result, applied_at=time.time()).where(m.Control.id == control.id).execute()
        self.applied.append((control.command, args))


def controls() -> list[tuple[str, dict, str]]:
    return [(c.command, json.loads(c.args_json), c.source) for c in m.Control.select().order_by(m.Control.id)]


def screen_text(app) -> str:
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True,
                      record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def until(pilot, condition, what: str, tries: int = 300) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"never happened: {what}\n{screen_text(pilot.app)}")


def task_status_cell(app, task_id: str) -> str:
    return app.query_one("#task-table").get_cell(task_id, "status").plain


async def test_pause_then_resume_reach_the_coordinator_and_the_screen(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("p")
        assert controls()[0] == ("pause", {"reason": "operator"}, "tui")
        await until(pilot, lambda: "PAUSED" in screen_text(app), "the pause shows")
        assert "paused by operator" in screen_text(app)
        await pilot.press("p")
        assert controls()[1][:2] == ("resume", {})
        await until(pilot, lambda: "PAUSED" not in screen_text(app), "the resume shows")
        assert [c for c, _ in coordinator.applied] == ["pause", "resume"]


async def test_retry_selected_task_keeps_the_cursor_on_it(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T4-ui")
        table = app.query_one("#task-table")
        rows_before = table.row_count
        await pilot.press("r")
        assert controls() == [("retry", {"task_id": "T4-ui"}, "tui")]
        await until(pilot, lambda: task_status_cell(app, "T4-ui") == "ready", "T4-ui shows ready")
        assert app.query_one(TaskQueue).selected_task_id == "T4-ui"
        assert table.row_count == rows_before
        await until(pilot, lambda: "needs attention: 2" in screen_text(app), "attention count drops")


async def test_cancel_dependents_asks_first_and_lists_them(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T2-model")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        text = screen_text(app)
        assert "T4-ui" in text and "T9-tests" in text and "T5-docs" in text
        await pilot.press("n")  # keep them: nothing is sent
        assert not isinstance(app.screen, ConfirmScreen)
        assert controls() == []
        await pilot.press("c", "y")
        assert controls() == [("cancel_dependents", {"task_id": "T2-model"}, "tui")]
        await until(pilot, lambda: task_status_cell(app, "T9-tests") == "cancelled", "dependents cancelled")


async def test_refused_rollback_is_shown_with_its_reason(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T1-setup")
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmScreen)
        assert "T3-api: app.py" in screen_text(app)  # the known conflict, before asking
        assert "Roll back 2 tasks" in screen_text(app)  # so the console offers the cascade
        await pilot.press("y")
        assert controls() == [("rollback", {"task_id": "T1-setup", "cascade": True, "scope": ["T1-setup", "T3-api"]},
                               "tui")]
        refusal = "cascade rollback of T1-setup (2 tasks) refused: later task T3-api touched app.py"
        await until(pilot, lambda: refusal in app.notices, "the refusal is notified")
        await pilot.pause()
        assert "refused" in screen_text(app)  # the toast is on screen


async def test_rollback_of_a_task_without_commit_sends_nothing(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T7-cli")
        await pilot.press("b")
        assert not isinstance(app.screen, ConfirmScreen)
        assert controls() == []


async def test_scale_keys_move_the_pool_target_within_bounds(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("plus", "plus")  # 3 -> 4 -> 5, even before the first is applied
        assert [a for c, a, _ in controls()] == [{"size": 4}, {"size": 5}]
        await until(pilot, lambda: "target 5" in screen_text(app), "pool target 5 shows")
        await pilot.press("plus", "plus")  # 6 is the maximum
        assert [a["size"] for c, a, _ in controls()] == [4, 5, 6]
        await until(pilot, lambda: "target 6" in screen_text(app), "pool target 6 shows")
        await pilot.press("minus")
        assert controls()[-1][:2] == ("scale", {"size": 5})


async def test_enter_opens_detail_and_a_opens_attention(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T3-api")
        await pilot.press("enter")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "T3-api"
        await pilot.press("end")  # the diff is at the bottom of the scrolled detail
        await pilot.pause()
        assert "diff --git a/app.py b/app.py" in screen_text(app)
        await pilot.press("escape", "a")
        assert isinstance(app.screen, AttentionScreen)
        assert [r.task_id for r in app.screen.rows] == ["T6-merge", "T5-docs", "T4-ui"]
        await pilot.press("enter")
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == "T6-merge"
        await pilot.press("r")  # retry works from the detail screen too
        assert controls() == [("retry", {"task_id": "T6-merge"}, "tui")]
        await pilot.press("escape", "escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "pause the mission" in screen_text(app)


async def test_theme_key_cycles_the_shipped_themes(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        seen = [app.theme]
        for _ in range(3):
            await pilot.press("t")
            seen.append(app.theme)
        assert seen == ["dark", "light", "high-contrast", "dark"]


async def test_quit_while_running_asks_then_stops_the_coordinator(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not coordinator.stop_requested
        await pilot.press("q", "y")
        await until(pilot, lambda: coordinator.stop_requested, "stop requested")
        await until(pilot, lambda: app.return_value is not None, "the app exits once the coordinator stopped")
    assert app.return_value == 3
    assert m.Run.get_by_id(RUN_ID).status == "stopped"  # left resumable, not finished
    assert controls() == []


async def test_quit_when_attached_leaves_the_run_alone(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("q")
    assert app.return_value == 0
    assert m.Run.get_by_id(RUN_ID).status == "running"


async def test_command_palette_runs_the_same_commands(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.press(*"Pause mission")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: controls() != [], "a control from the palette")
        assert controls() == [("pause", {"reason": "operator"}, "tui")]


def store_with_300_more_tasks(tmp_path):
    """The demo store plus 300 pending tasks, so most rows are off screen."""
    from hybrid_tui.store.db import open_store

    from .conftest import FIXED, fill_store

    store = open_store(tmp_path / "state.db")
    fill_store(store, tmp_path)
    with store.write(RUN_ID) as v:
        for i in range(300):
            m.Task.create(run=RUN_ID, task_id=f"bulk-{i:03d}", issue_id="I", title=f"bulk task {i}", priority="LOW",
                          spec_json="{}", status="pending", created_at=FIXED - 60, updated_at=FIXED, version=v)
    return store


async def test_rows_update_in_place_without_moving_cursor_or_scroll(tmp_path):
    """With many tasks, a store change rewrites only the changed cells."""
    store = store_with_300_more_tasks(tmp_path)
    app = make_app(store, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        table = app.query_one("#task-table")
        await pilot.pause()
        table.move_cursor(row=table.get_row_index("bulk-150"))  # setup: 150 presses of "down" is slow
        await pilot.pause()
        scroll_before = table.scroll_y
        assert scroll_before > 0
        with store.write(RUN_ID) as v:
            m.Task.update(status="running", agent_id="impl-1", version=v).where(m.Task.task_id.in_(["bulk-150", "bulk-010"])).execute()
        await until(pilot, lambda: task_status_cell(app, "bulk-150") == "running", "the row updates")
        assert task_status_cell(app, "bulk-010") == "running"
        assert app.query_one(TaskQueue).selected_task_id == "bulk-150"
        assert table.scroll_y == scroll_before
        assert table.row_count == 309
    store.close()


async def test_a_row_that_changed_off_screen_shows_its_new_state_when_scrolled_into_view(tmp_path):
    """Only rows near the screen are re-rendered each tick; the others must catch up on sight."""
    store = store_with_300_more_tasks(tmp_path)
    app = make_app(store, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        with store.write(RUN_ID) as v:
            m.Task.update(title="renamed while off screen", version=v).where(m.Task.task_id == "bulk-299").execute()
        # The console has polled the change (reading a cell brings a row up to date, so look
        # only at its own record of what it read, not at the table).
        queue = app.query_one(TaskQueue)
        await until(pilot, lambda: queue.rows["bulk-299"].title == "renamed while off screen", "the poll reads it")
        assert "renamed while off" not in screen_text(app)  # the row is far below the screen
        table = app.query_one("#task-table")
        table.move_cursor(row=table.row_count - 1)  # scrolls the last rows into view
        await until(pilot, lambda: "renamed while off" in screen_text(app), "the scrolled-to row shows its new title")
        line = next(ln for ln in screen_text(app).splitlines() if "bulk-299" in ln)
        assert "renamed while off" in line
    store.close()


async def test_escape_sequences_and_markup_from_data_render_inert(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await pilot.pause()
        title = app.query_one("#task-table").get_cell("T4-ui", "title")
        assert "\x1b" not in title.plain and "␛[31mUI" in title.plain and "[bold]now[/bold]" in title.plain
        text = screen_text(app)
        assert "[red]markup[/red]" in text and "␛]0;pwned␇" in text


async def test_agent_slots_show_their_worker_and_host_and_a_worker_lost(demo_store):
    """In-process runs show no worker column; once a slot runs on a worker the pane shows
    ``name@host`` per slot, and ``... lost`` when the coordinator lost that worker."""
    app = make_app(demo_store, poll_interval=0.05)
    async with app.run_test(size=(140, 44)) as pilot:
        table = app.query_one("#agent-table")
        await pilot.pause()
        assert "worker" not in table.columns
        with demo_store.write(RUN_ID) as v:
            m.Agent.update(worker="w1@host-a", version=v).where(m.Agent.agent_id == "impl-2").execute()
            m.Agent.update(worker="w2@host-b lost", version=v).where(m.Agent.agent_id == "impl-3").execute()
        await until(pilot, lambda: "worker" in table.columns, "the worker column")
        await until(pilot, lambda: table.get_cell("impl-3", "worker").plain == "w2@host-b lost", "the lost worker")
        assert table.get_cell("impl-2", "worker").plain == "w1@host-a"
        assert table.get_cell("impl-1", "worker").plain == "-"
        assert table.get_cell("impl-3", "worker").style.bold
