"""Pilot tests of issue 21: the console an operator trusts (one block per item of the issue).

Real SQLite store and git repository from conftest, a frozen clock, the real HybridApp; the
CLI checks run the real ``hybrid-tui`` entry point; the finished-run quit runs the real
coordinator on the quickstart sample.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.color import Color
from textual.command import CommandPalette
from textual.widgets import Footer

from hybrid_tui.store import models as m
from hybrid_tui.tui.panes.tasks import TaskQueue, id_width, shorten_id
from hybrid_tui.tui.screens import (
    BudgetScreen,
    ConfirmScreen,
    DependencyScreen,
    LogScreen,
)
from hybrid_tui.tui.themes import load_themes, theme_problems

from .conftest import FIXED, RUN_ID, make_app, select_task
from .test_pilot import FakeCoordinator, controls, screen_text, until

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def set_run(**fields) -> None:
    with m.Run._meta.database.atomic():
        m.Run.update(**fields).where(m.Run.id == RUN_ID).execute()


def bump_run(store) -> None:
    """A write the console's poll sees (the run's version moves)."""
    with store.write(RUN_ID):
        pass


# ------------------------------------------------------------------ 1. themes that render
async def test_theme_list_offers_only_themes_that_render(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert set(app.available_themes) == set(load_themes())
        assert "ansi-light" not in app.available_themes
        app.action_change_theme()  # the palette's "Theme" command
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")


async def test_a_theme_with_ansi_colours_paints_every_pane(demo_store, tmp_path, monkeypatch):
    themes = tmp_path / "themes"
    themes.mkdir()
    for path in (REPO / "themes").glob("*.toml"):
        (themes / path.name).write_text(path.read_text())
    (themes / "term.toml").write_text('name = "term"\ndark = false\nprimary = "ansi_blue"\nsuccess = "ansi_green"\n'
                                      'error = "ansi_red"\nwarning = "ansi_bright_red"\naccent = "ansi_magenta"\n')
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    monkeypatch.setenv("HYBRID_TUI_THEMES", str(themes))
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "broken" not in app.available_themes
        assert any("not-a-colour" in why for why in theme_problems().values())
        app.theme = "term"  # was ColorParseError 'ansi_green' from the panes' styles
        await pilot.pause()
        assert "Tasks 9/9" in screen_text(app)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}, timeout=120, check=False)


def test_run_with_a_theme_that_does_not_render_is_one_line_exit_2_and_no_run(tmp_path):
    result = run_cli("run", str(REPO / "sample_missions" / "quickstart"), "--runs-dir", str(tmp_path / "runs"),
                     "--theme", "ansi-light", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ansi-light" in lines[0] and "dark" in lines[0], result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------ 2. ctrl+q and the palette's Quit
@pytest.mark.parametrize("how", ["ctrl+q", "palette"])
async def test_ctrl_q_and_palette_quit_ask_like_q_mid_run(demo_store, how):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        if how == "ctrl+q":
            await pilot.press("ctrl+q")
        else:
            await app.run_action("quit")  # what the palette's built-in "Quit" runs
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen), "quit mid-run must ask"
        assert app.return_value is None and not coordinator.stop_requested
        await pilot.press("n")
        assert not coordinator.stop_requested
        await pilot.press("ctrl+q")
        await pilot.press("y")
        await until(pilot, lambda: app.return_value is not None, "the app exits after the coordinator stopped")
    assert coordinator.stop_requested and app.return_value == 3
    assert m.Run.get_by_id(RUN_ID).status == "stopped"


# ------------------------------------------------------------------ 3. a lost coordinator is seen
async def test_an_attached_console_sees_the_coordinator_lost_and_sends_nothing(demo_store):
    app = make_app(demo_store, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T4-ui")
        assert "COORDINATOR LOST" not in screen_text(app)
        set_run(heartbeat_at=FIXED - 30)  # killed 30 s ago: no heartbeat since
        await until(pilot, lambda: "COORDINATOR LOST" in screen_text(app), "the header says the coordinator is lost")
        await pilot.press("r", "p")
        assert controls() == []
        assert any("not sent" in n and "coordinator is gone" in n for n in app.notices)
        set_run(heartbeat_at=FIXED - 1)  # a coordinator again (resumed)
        await until(pilot, lambda: "COORDINATOR LOST" not in screen_text(app), "the header clears")
        await pilot.press("r")
        assert controls() == [("retry", {"task_id": "T4-ui"}, "tui")]


async def test_a_stopped_run_queues_no_commands(tmp_path):
    from hybrid_tui.store.db import open_store

    from .conftest import fill_store

    store = open_store(tmp_path / "state.db")
    fill_store(store, tmp_path, run_status="stopped")
    try:
        app = make_app(store, poll_interval=0.05)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await select_task(pilot, "T4-ui")
            await pilot.press("r", "plus")
            assert controls() == []
            assert any("no coordinator drives it" in n for n in app.notices)
    finally:
        store.close()


def test_runs_shows_a_running_run_whose_coordinator_is_gone(demo_store, tmp_path):
    from hybrid_tui.app.runs_commands import format_runs_table
    from hybrid_tui.store.runs import RunSummary

    gone = RunSummary("r1", tmp_path, "quickstart", "running", 2, 9, 1.0, FIXED - 900, heartbeat_at=FIXED - 60)
    alive = RunSummary("r2", tmp_path, "quickstart", "running", 2, 9, 1.0, FIXED - 900, heartbeat_at=FIXED - 1)
    table = format_runs_table([gone, alive], now=FIXED).splitlines()
    assert "running (coordinator lost)" in table[1]
    assert "coordinator lost" not in table[2]


# ------------------------------------------------------------------ 4. elapsed, $/h, ETA; estimate vs actual
async def test_header_shows_elapsed_spend_rate_and_the_eta_slot(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        # created 900 s before the frozen now; $1.03 spent in 15 minutes = $4.12/h
        assert "elapsed 15m00s" in text and "$4.12/h" in text and "ETA " in text
        table = app.query_one("#task-table")
        assert table.get_cell("T2-model", "time").plain == "run 9m"  # in its attempt for 9 min
        assert table.get_cell("T7-cli", "time").plain == "wait 15m"
        assert table.get_cell("T1-setup", "time").plain == "took 2m"


async def test_detail_shows_estimate_against_actual_and_why_a_ready_task_waits(demo_store):
    with demo_store.write(RUN_ID):
        m.Task.update(estimated_duration_minutes=2).where(m.Task.task_id == "T2-model").execute()
    app = make_app(demo_store)
    async with app.run_test(size=(120, 50)) as pilot:
        await select_task(pilot, "T2-model")
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert "estimated 2m00s · running for 9m30s (4.8× the estimate)" in text
        await pilot.press("escape")
        await select_task(pilot, "T7-cli")
        await pilot.press("enter")
        await pilot.pause()
        assert "waits because" in screen_text(app)


# ------------------------------------------------------------------ 5. every pane reachable at 80x24
async def test_w_at_80x24_reaches_agents_resources_cost_and_locks(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        side = app.query_one("#side")
        # The side panes get the whole body (header 2 and footer 1 lines aside), not 11 lines.
        assert side.outer_size.height == 24 - 3
        seen = screen_text(app)
        for _ in range(6):  # page through them with the keyboard
            await pilot.press("pagedown")
            seen += screen_text(app)
        for pane in ("Agents", "Resources", "Cost", "File locks 2"):
            assert pane in seen, pane
        await pilot.press("w")
        await pilot.pause()
        assert "Tasks 9/9" in screen_text(app)


# ------------------------------------------------------------------ 6. layout follows every resize
def column_widths(app) -> dict[str, int]:
    table = app.query_one("#task-table")
    return {str(c.key.value): c.width for c in table.columns.values()}


async def test_resize_recomputes_the_columns_both_ways(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        narrow = column_widths(app)
        assert "score" not in narrow and "status" in narrow
        await pilot.resize_terminal(200, 55)
        await pilot.pause()
        wide = column_widths(app)
        pane = app.query_one(TaskQueue)
        assert "score" in wide and wide["title"] > narrow["title"] + 30
        used = sum(wide.values()) + 2 * len(wide) + 1  # cell padding, the scrollbar
        assert pane.size.width - 3 <= used <= pane.size.width, (used, pane.size.width)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert column_widths(app) == narrow
        assert sum(narrow.values()) + 2 * len(narrow) + 1 <= app.query_one(TaskQueue).size.width


async def test_term_dumb_gets_no_colour(demo_store, monkeypatch):
    from rich.segment import Segment

    monkeypatch.setenv("TERM", "dumb")
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        coloured = [Segment("failed", app.query_one("#task-table").get_cell("T4-ui", "status").style)]
        for line_filter in app._filters:  # what the driver writes goes through these
            coloured = line_filter.apply(coloured, Color(0, 0, 0))
        assert coloured[0].style.color is None or coloured[0].style.color.is_default


# ------------------------------------------------------------------ 7. ids never cut to ambiguity
def test_shortened_ids_stay_distinct():
    ids = [f"perf-agent-{i}" for i in range(1, 13)] + [f"storage-{i:04}" for i in range(60)]
    width = id_width(ids, cap=8)
    shown = {shorten_id(i, width) for i in ids}
    assert len(shown) == len(ids)
    assert shorten_id("perf-agent-12", 9) == "perf…t-12"


@pytest.mark.parametrize("size", [(60, 18), (60, 40), (80, 24)])
async def test_ids_on_screen_are_distinct_and_status_stays(demo_store, size):
    with demo_store.write(RUN_ID) as version:
        for i in range(1, 13):
            m.Task.create(run=RUN_ID, task_id=f"perf-agent-{i}", issue_id="ISSUE-2", title="Profile the agent",
                          priority="LOW", spec_json="{}", status="pending", created_at=FIXED - 60,
                          updated_at=FIXED, version=version)
    app = make_app(demo_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"perf", "enter")  # only those twelve
        await pilot.pause()
        lines = [line for line in screen_text(app).splitlines() if "Profil" in line]
        assert lines and all("pending" in line for line in lines)  # the status column is on screen
        shown = [line.split()[1] for line in lines]  # "│", then the id as the screen shows it
        assert len(set(shown)) == len(shown), shown


# ------------------------------------------------------------------ 8. search, j/k/g/G, marks, bulk, budget
async def test_slash_search_and_jkgG(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one(TaskQueue)
        await pilot.press("G")
        assert pane.selected_task_id == "T9-tests"
        await pilot.press("g", "j", "j")
        assert pane.selected_task_id == "T3-api"
        await pilot.press("k")
        assert pane.selected_task_id == "T2-model"
        await pilot.press("slash", *"docs")
        await pilot.pause()
        assert set(pane.cells) == {"T5-docs"}
        await pilot.press("enter")
        assert pane.selected_task_id == "T5-docs"
        await pilot.press("escape")  # clears the search
        await pilot.pause()
        assert len(pane.cells) == 9
        await pilot.press("F")  # one press back reaches "done" (was 8 presses of f)
        assert pane.filter_name == "done"


async def test_mark_and_retry_the_marked_in_one_go(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T4-ui")
        await pilot.press("space")  # marks T4-ui, moves to T5-docs
        await pilot.press("space")
        pane = app.query_one(TaskQueue)
        assert pane.marked == {"T4-ui", "T5-docs"}
        assert app.query_one("#task-table").get_cell("T4-ui", "mark").plain == "●"
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert sorted(a["task_id"] for c, a, _ in controls() if c == "retry") == ["T4-ui", "T5-docs"]
        assert not pane.marked


async def test_retry_all_failed_of_a_type_warns_about_git_conflicts(demo_store):
    with demo_store.write(RUN_ID) as version:
        m.Task.update(failure_type="git_conflict", version=version).where(m.Task.task_id == "T4-ui").execute()
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await select_task(pilot, "T6-merge")
        await pilot.press("R")
        text = screen_text(app)
        assert "git_conflict (2)" in text and "same conflict" in text
        await pilot.press("y")
        assert sorted(a["task_id"] for c, a, _ in controls()) == ["T4-ui", "T6-merge"]


async def test_a_git_conflict_detail_names_the_task_it_conflicts_with(demo_store):
    with demo_store.write(RUN_ID):
        m.FileOperation.create(run=RUN_ID, task_id="T6-merge", seq=1, op="edit", path="util.py")
    app = make_app(demo_store)
    async with app.run_test(size=(120, 50)) as pilot:
        await select_task(pilot, "T6-merge")
        await pilot.press("enter")
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if "conflicts with" in line)
        assert "T3-api (util.py)" in line


async def test_dollar_raises_the_budget_through_a_control(demo_store):
    coordinator = FakeCoordinator(demo_store)
    app = make_app(demo_store, coordinator=coordinator, poll_interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("dollar_sign")
        assert isinstance(app.screen, BudgetScreen)
        field = app.screen.query_one("#budget-input")
        field.value = ""
        await pilot.press(*"5.5", "enter")
        assert controls() == [("budget", {"mission_usd": 5.5}, "tui")]


async def test_dependency_tree_shows_ancestors_and_dependents_with_states(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        await select_task(pilot, "T4-ui")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DependencyScreen)
        text = screen_text(app)
        ancestors, dependents = text.split("waited on by")
        assert "T2-model" in ancestors and "T1-setup" in ancestors and "running" in ancestors
        assert "T5-docs" in dependents and "blocked" in dependents
        await pilot.press("escape")
        assert not isinstance(app.screen, DependencyScreen)


async def test_log_pager_shows_the_whole_log_and_follows_it(demo_store, tmp_path):
    log = tmp_path / "run" / "logs" / "T2-model-1.log"
    log.write_text("".join(f"line {i}\n" for i in range(3000)))  # far beyond the 4 KB tail
    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_task(pilot, "T2-model")
        await pilot.press("enter", "l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        pager = app.screen
        assert pager.follow  # the attempt is running
        assert pager.log_view.line_count == 3000 and pager.log_view.lines[0] == "line 0"
        with open(log, "a") as fh:
            fh.write("new output\x1b[2J\n")
        await until(pilot, lambda: pager.log_view.line_count == 3001, "the new line is followed")
        assert pager.log_view.lines[-1] == "new output␛[2J"
        await pilot.press("f")
        assert not pager.follow


# ------------------------------------------------------------------ 9. misleading states
async def test_finished_with_failures_is_not_a_green_finished(tmp_path):
    from hybrid_tui.store.db import open_store

    from .conftest import fill_store

    store = open_store(tmp_path / "state.db")
    fill_store(store, tmp_path, run_status="finished")
    try:
        app = make_app(store)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            text = screen_text(app)
            assert "finished, 3 not done" in text  # 2 failed, 1 blocked
    finally:
        store.close()


async def test_agents_done_counts_finished_tasks_and_util_says_its_window(demo_store):
    with demo_store.write(RUN_ID):
        m.Agent.update(tasks_done=0).execute()  # the runtime never writes it
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one("#agent-table")
        assert table.get_cell("impl-1", "done").plain == "1"  # T1-setup
        assert table.get_cell("impl-3", "done").plain == "1"  # T3-api
        text = screen_text(app)
        assert "util 5m" in text and "busy now 2" in text and "pool 3 live" in text


def test_q_on_a_finished_run_keeps_it_finished_with_its_exit_code(tmp_path):
    """The real coordinator on the quickstart, in the console: q after it finished gives the
    headless exit code (0) and leaves the run finished, not "stopped (operator)" / 3."""
    script = tmp_path / "drive.py"
    script.write_text(f'''
import asyncio, sys
sys.path.insert(0, {str(REPO)!r})
from hybrid_tui.app.launch import start_run
from hybrid_tui.store import queries
from hybrid_tui.tui import HybridApp

async def main():
    store, run_id, c = start_run({str(REPO / "sample_missions" / "quickstart")!r}, {str(tmp_path / "runs")!r}, "replay")
    c.exit_when_finished = False
    app = HybridApp(store, run_id, coordinator=c, poll_interval=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(30000):  # a safety net: the quickstart takes seconds, longer on a loaded machine
            await pilot.pause(0.02)
            if queries.run_record(run_id).status == "finished":
                break
        await pilot.press("q")
        for _ in range(3000):  # a safety net: the exit waits for the coordinator's stop
            if app.return_value is not None:
                break
            await pilot.pause(0.02)
    print(app.return_value, queries.run_record(run_id).status)

asyncio.run(main())
''')
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["0", "finished"], result.stdout + result.stderr[-2000:]


# ------------------------------------------------------------------ 10. contrast and the footer
def contrast(fg: Color, bg: Color) -> float:
    def luminance(c: Color) -> float:
        def channel(v: int) -> float:
            v = v / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
async def test_the_cursor_rows_status_is_readable(demo_store, theme):
    app = make_app(demo_store, theme=theme)
    async with app.run_test(size=(120, 40)) as pilot:
        await select_task(pilot, "T4-ui")  # status "failed": the error colour on the cursor
        table = app.query_one("#task-table")
        strip = table.render_line(table.cursor_row + 1)  # + the header line
        segment = next(s for s in strip if "failed" in s.text)
        fg, bg = Color.from_rich_color(segment.style.color), Color.from_rich_color(segment.style.bgcolor)
        assert contrast(fg, bg) >= 4.5, (theme, segment.style)


async def test_the_footer_fits_80_columns_whole(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        # The footer fills itself in a few messages after the mount.
        await until(pilot, lambda: "Tasks 9/9" in screen_text(app) and "palette" in screen_text(app), "a full frame")
        footer = screen_text(app).rstrip("\n").splitlines()[-1]
        assert footer.rstrip().endswith("palette")
        for binding in app.query_one(Footer).screen.active_bindings.values():
            if binding.binding.show:
                assert binding.binding.description in footer, binding.binding.description
