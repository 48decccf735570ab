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


# ------------------------------------------------------------------ ids in the side panes and attention
def add_failed_task(store, task_id: str, reason: str) -> None:
    with store.write(RUN_ID) as v:
        m.Task.create(run=RUN_ID, task_id=task_id, issue_id="ISSUE-9", title="Give the field a name", priority="HIGH",
                      spec_json="{}", status="failed", score=10, attempts=1, cost_usd=0.01, failure_type="git_conflict",
                      attention_reason=reason, created_at=FIXED - 900, updated_at=FIXED - 50, version=v)


def cell(app, table_id: str, row: str, column: str) -> str:
    return app.screen.query_one(table_id).get_cell(row, column).plain


@pytest.mark.parametrize("size", SIZES)
async def test_agents_and_locks_panes_tell_two_long_task_ids_apart(demo_store, size):
    """web-18 at 200x55: agents and locks both showed "perf-agents…" for perf-agents-cache and
    perf-agents-rate-limit (ids cut to 11 characters with a trailing "…", at any width)."""
    with demo_store.write(RUN_ID):
        m.Agent.update(task_id="perf-agents-cache").where(m.Agent.agent_id == "impl-2").execute()
        m.Agent.update(task_id="perf-agents-rate-limit").where(m.Agent.agent_id == "impl-3").execute()
        m.FileLock.update(task_id="perf-agents-cache").where(m.FileLock.path == "model.py").execute()
        m.FileLock.update(task_id="perf-agents-rate-limit").where(m.FileLock.path == "cli.py").execute()
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if app.compact:
            await pilot.press("w")  # the side panes take the body
            await pilot.pause()
        # What is on screen (a cell's stored text was always whole; its rendering cut it).
        def side_row(key: str) -> str:
            line = next(line for line in screen_text(app).splitlines() if f"│ {key} " in line)
            return line[line.index(f"│ {key} "):]

        assert "cache" in side_row("impl-2") and "limit" in side_row("impl-3")
        util = side_row("impl-1") and next(line for line in screen_text(app).splitlines() if "util 5m" in line)
        if app.compact:
            await pilot.press("end")  # the side panes scroll: the locks are below the fold
            await pilot.pause()
        assert "cache" in side_row("model.py") and "limit" in side_row("cli.py")
        assert "%" in util.split("util 5m", 1)[1]  # the figure, not cut


@pytest.mark.parametrize("size", SIZES)
async def test_attention_view_shows_the_whole_task_id(demo_store, size):
    """web-18 at 200x55: the attention view showed "a11y-search-fi" (14 columns, no mark)."""
    add_failed_task(demo_store, "a11y-search-field", "git_conflict: file operation 1 conflicts")
    add_failed_task(demo_store, "a11y-search-field-label", "git_conflict: file operation 2 conflicts")
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        assert cell(app, "#attention-table", "a11y-search-field", "task") == "a11y-search-field"
        assert cell(app, "#attention-table", "a11y-search-field-label", "task") == "a11y-search-field-label"
        assert "a11y-search-field-label" in screen_text(app)
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert "a11y-search-field " in screen_text(app)  # still whole (and on screen) after a resize


# ------------------------------------------------------------------ footers and keys on the other screens
def footer_line(app) -> str:
    return screen_text(app).splitlines()[-1].rstrip()


@pytest.mark.parametrize("size", SIZES)
async def test_every_screens_footer_fits_and_offers_only_keys_that_act_there(demo_store, size):
    """80x24: the detail's footer read "... p Pause ▏^p paletteS", the attention view's
    "... w Panes ?▏^p palettet" (keys past the edge); "/ Search" and "w Panes" were offered
    on the detail, log and tree screens, where they did nothing."""
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert footer_line(app).endswith("^p palette")
        await select_task(pilot, "T4-ui")
        for keys, screen in ((("enter",), "TaskDetailScreen"), (("l",), "LogScreen"), (("escape", "d"), "DependencyScreen"),
                             (("escape", "escape", "a"), "AttentionScreen")):
            await pilot.press(*keys)
            await pilot.pause()
            assert type(app.screen).__name__ == screen
            footer = footer_line(app)
            assert footer.endswith("^p palette"), (screen, footer)
            assert "Search" not in footer and "Panes" not in footer, (screen, footer)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0] and "/ Search w Panes" in footer_line(app)  # back on the dashboard


async def test_dashboard_keys_do_not_change_the_hidden_dashboard_from_the_detail(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_task(pilot, "T4-ui")
        await pilot.press("enter")
        await pilot.pause()
        pane = app.tasks_pane
        await pilot.press("f", "s", "space", "slash", "w")
        await pilot.pause()
        assert type(app.screen).__name__ == "TaskDetailScreen"
        assert pane.filter_name == "all" and pane.sort_name == "queue" and not pane.marked
        await pilot.press("l", "enter")  # enter on the log pager opened the dashboard's selected task
        await pilot.pause()
        assert type(app.screen).__name__ == "LogScreen"


async def test_j_k_g_G_scroll_the_detail(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_task(pilot, "T4-ui")
        await pilot.press("enter")
        await pilot.pause()
        body = app.screen.query_one("#detail-body")
        await pilot.press("G")
        await pilot.pause()
        assert body.scroll_y == body.max_scroll_y > 0
        await pilot.press("k")
        await pilot.pause()
        assert body.scroll_y == body.max_scroll_y - 1
        await pilot.press("g")
        await pilot.pause()
        assert body.scroll_y == 0
        await pilot.press("j")
        await pilot.pause()
        assert body.scroll_y == 1


# ------------------------------------------------------------------ R: bulk retry of marked tasks
@pytest.mark.parametrize("size", SIZES)
async def test_R_retries_only_the_marked_tasks_a_retry_takes(demo_store, size):
    """The quickstart, finished: two done tasks marked, R asked "Retry 2 task(s)?" and both
    came back "refused: task ... is done"."""
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=size, notifications=True) as pilot:
        for task_id in ("T1-setup", "T4-ui"):  # done, failed
            await select_task(pilot, task_id)
            await pilot.press("space")
        await pilot.press("R")
        assert type(app.screen).__name__ == "ConfirmScreen"
        body = app.screen.body.plain
        assert "Retry 1 of the 2 marked task(s)" in body and "T4-ui  (failed" in body
        assert "Left as they are (1" in body and "T1-setup" in body.split("Left as they are", 1)[1]
        await pilot.press("y")
        assert [(c, a) for c, a, _ in controls()] == [("retry", {"task_id": "T4-ui"})]
        await select_task(pilot, "T3-api")  # done
        await pilot.press("space", "R")
        assert app.screen is app.screen_stack[0]  # nothing to ask
        assert "none of the 1 marked task(s) can be retried" in app.notices[-1]


async def test_R_with_no_coordinator_refuses_before_asking(tmp_path):
    from hybrid_tui.store.db import open_store

    from .conftest import fill_store

    store = open_store(tmp_path / "state.db")
    fill_store(store, tmp_path, run_status="finished")
    try:
        app = make_app(store)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await select_task(pilot, "T4-ui")
            await pilot.press("R")
            assert app.screen is app.screen_stack[0]  # C refused before asking; R asked, then refused each
            assert "not sent" in app.notices[-1] and controls() == []
    finally:
        store.close()


# ------------------------------------------------------------------ a budget raised
@pytest.mark.parametrize("size", SIZES)
async def test_a_raised_budget_shows_at_once(demo_store, size):
    """web-18: `$` 7.50 applied ("mission budget $7.50" in the events) while the header and
    the summary line kept "$0.56/$6.00" until an attempt ended (after a budget stop none does)."""
    app = make_app(demo_store, poll_interval=3600)  # polls by hand
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert "/$1.50" in header_lines(app)[1]
        with demo_store.write(RUN_ID):  # what the coordinator's budget control writes
            m.Run.update(mission_budget_usd=7.5).where(m.Run.id == RUN_ID).execute()
        app.poll_now()
        await pilot.pause()
        assert "/$7.50" in header_lines(app)[1]
        assert "/$7.50" in screen_text(app).split("\n", 2)[2]  # the summary line or the cost pane too


# ------------------------------------------------------------------ the log pager's title
@pytest.mark.parametrize("size", SIZES)
async def test_log_pager_title_shows_the_follow_state_at_any_width(demo_store, size):
    """80x24: the title was "<task> attempt 1 (running)  /tmp/.../logs/<task>-1.log  follow on (f)"
    on one line: the follow state never showed, and g (which turns follow off) changed nothing seen."""
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await select_task(pilot, "T2-model")
        await pilot.press("enter", "l")
        await pilot.pause()
        assert "follow on (f)" in screen_text(app).splitlines()[0]
        await pilot.press("g")
        await pilot.pause()
        assert "follow off (f)" in screen_text(app).splitlines()[0]


# ------------------------------------------------------------------ a coordinator that is planning
def set_run(store, **fields) -> None:
    with store.write(RUN_ID):
        m.Run.update(**fields).where(m.Run.id == RUN_ID).execute()


@pytest.mark.parametrize("size", SIZES)
async def test_a_planning_coordinator_on_this_machine_is_not_lost(demo_store, size):
    """scale-200 headless, attached: "planning: COORDINATOR LOST" for the whole planning
    minute (planning writes no heartbeat) and p refused, while the events showed it planning."""
    import os
    import socket
    import subprocess
    import sys

    set_run(demo_store, status="planning", heartbeat_at=FIXED - 60, coordinator_pid=os.getpid(),
            coordinator_host=socket.gethostname())
    app = make_app(demo_store, poll_interval=0.05)
    async with app.run_test(size=size, notifications=True) as pilot:
        await pilot.pause()
        assert "COORDINATOR LOST" not in screen_text(app) and "planning" in header_lines(app)[0]
        await pilot.press("p")
        assert [c for c, _, _ in controls()] == ["pause"]  # applied once planning is done
        # The process is gone (a real one, exited and reaped): lost, and nothing is sent.
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        set_run(demo_store, coordinator_pid=int(gone.stdout))
        await until(pilot, lambda: "COORDINATOR LOST" in header_lines(app)[0], "the header says lost")
        assert "ETA —" in header_lines(app)[1]  # no forecast for a run nobody drives
        await pilot.press("p")
        assert [c for c, _, _ in controls()] == ["pause"]
        # A coordinator on another machine is known by its heartbeat only.
        set_run(demo_store, coordinator_pid=os.getpid(), coordinator_host="elsewhere.example")
        await pilot.pause(0.2)
        assert "COORDINATOR LOST" in header_lines(app)[0]


@pytest.mark.parametrize("size", SIZES)
async def test_a_policy_pause_reason_never_hides_the_counts(demo_store, size):
    """web-18 paused by its failure-rate policy at 80x24: line 1 read "web-18 paused (failure
    rate 50% over 2 attempts exceeds 5…" and the counts were gone."""
    set_run(demo_store, status="paused",
            pause_reason="failure rate 50% over 2 attempts exceeds 5% (failure_rate_pause); resume with p")
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        first = header_lines(app)[0]
        assert "paused" in first and "done 2/9 · running 1" in first and "needs attention: 3" in first
        assert "(failure rate 50" in first  # as much of the reason as fits


# ------------------------------------------------------------------ keys while the side panes have the body
def tasks_hidden(app) -> bool:
    return not app.query_one("#main").display
async def test_search_from_the_side_panes_brings_the_tasks_back(demo_store):
    """web-18 at 80x24, `w` then `/`: the search box opened in the hidden task list, and what
    was typed next (w included) went into it; the side panes could not be left."""
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        assert tasks_hidden(app)
        footer = footer_line(app)
        assert "Detail" not in footer and "/ Search" in footer
        await pilot.press("slash", "T", "4")
        await pilot.pause()
        assert not tasks_hidden(app)
        text = screen_text(app)
        assert "T4-ui" in text and "T2-model" not in text  # the search is seen, and it filters
        await pilot.press("escape")  # clears it
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        assert tasks_hidden(app)
        await pilot.press("f", "space")  # act on a list that is not on screen: nothing happens
        assert app.tasks_pane.filter_name == "all" and not app.tasks_pane.marked
        await pilot.press("r")  # nor on its hidden selection
        assert controls() == [] and "Retry" not in footer_line(app)


# ------------------------------------------------------------------ the event log at 80x24
async def test_long_events_are_cut_with_a_mark_and_take_no_row_for_a_scrollbar(demo_store):
    """The quickstart at 80x24: the events pane showed 3 events and a row holding a sideways
    scrollbar ("▏"), each long line cut at the border with no mark."""
    for k in range(4):
        demo_store.add_event(RUN_ID, "attempt.started", f"report-low-stock attempt {k} on agent-04 "
                             "(claude-haiku-4-5) after the validation feedback", level="info",
                             task_id="report-low-stock", ts=FIXED - 20 + k)
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        top = next(i for i, line in enumerate(lines) if "Events 10" in line)
        rows = lines[top + 1:top + 5]
        assert all("attempt.started" in row and "…" in row for row in rows), rows
        await pilot.resize_terminal(200, 55)
        await pilot.pause()
        assert "(claude-haiku-4-5) after the validation feedback" in screen_text(app)  # whole again


# ------------------------------------------------------------------ p says what it does
async def test_p_is_labelled_resume_on_a_paused_run(demo_store):
    """web-18 paused by its failure-rate policy: the footer said "p Pause"."""
    set_run(demo_store, status="paused", pause_reason="failure rate 50% over 2 attempts exceeds 5%")
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        assert footer_line(app).startswith("p Resume ")
        await pilot.press("p")
        assert [c for c, _, _ in controls()] == ["resume"]
        await until(pilot, lambda: footer_line(app).startswith("p Pause "), "the footer offers pause again")
        await pilot.press("p")
        assert [c for c, _, _ in controls()] == ["resume", "pause"]
        await until(pilot, lambda: footer_line(app).startswith("p Resume "), "and resume once paused")


# ------------------------------------------------------------------ the pool's utilisation on a young run
async def test_util_of_a_young_run_is_over_the_time_it_ran(demo_store):
    """web-18, 16 s in, 6 of 8 agents busy since the start: "busy now 6 · util 5m 4%" (the
    five minutes before the run counted as idle)."""
    set_run(demo_store, created_at=FIXED - 30)
    with demo_store.write(RUN_ID):
        m.Attempt.update(started_at=FIXED - 30).where((m.Attempt.task_id == "T2-model") & (m.Attempt.finished_at.is_null())).execute()
        m.Attempt.update(started_at=FIXED - 900, finished_at=FIXED - 899).where(m.Attempt.task_id != "T2-model").execute()
    app = make_app(demo_store)
    async with app.run_test(size=(200, 55)) as pilot:
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if "busy now" in line)
        # impl-2 busy the whole 30 s, 3 live slots: a third of the pool.
        assert "util 30s 33%" in line, line


@pytest.mark.parametrize("size", SIZES)
async def test_q_leaves_the_attention_view_like_every_other_view(demo_store, size):
    """q went back from the detail, the tree and the log, but on the attention view it was the
    console's quit: an attached console exited at once."""
    app = make_app(demo_store)  # attached: quitting would exit without asking
    async with app.run_test(size=size) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert type(app.screen).__name__ == "AttentionScreen"
        await pilot.press("q")
        await pilot.pause()
        assert app.screen is app.screen_stack[0] and app.return_value is None and app.is_running
