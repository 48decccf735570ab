"""Agent pool pane (room: tui): each slot's state and task, utilisation sparklines, pool size;
with workers (``run --broker``), each slot's worker and host, and a worker lost."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import DataTable, Sparkline, Static

from hybrid_tui.store.records import AgentRow
from hybrid_tui.tui.data import RunInfo, StoreView, coarse_age, inert
from hybrid_tui.tui.panes.style import shorten_id, spark, status_text, theme_color

COLUMNS = ("agent", "state", "task", "done", "util")
WORKER_COLUMN = "worker"  # shown once a slot runs on a worker (an in-process run never shows it)
WIDTHS = {"agent": 9, "state": 8, "task": 12, "done": 4, "util": 10, WORKER_COLUMN: 18}
MAX_TASK_WIDTH = 40


class AgentPool(Vertical):
    DEFAULT_CSS = """
    AgentPool { border: round $primary 60%; height: auto; max-height: 14; }
    AgentPool #pool-line { height: 1; }
    AgentPool Sparkline { height: 1; margin: 0 0 0 0; }
    AgentPool DataTable { height: auto; max-height: 10; scrollbar-size-vertical: 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.agents: dict[str, AgentRow] = {}
        self.cells: dict[str, tuple[str, ...]] = {}
        self.util: dict[str, list[float]] = {}
        self._pool_line = ""
        self._pool_line_choices: tuple[str, str] = ("", "")  # with the pool's limits, without
        self.columns: tuple[str, ...] = COLUMNS
        self.border_title = "Agents"
        self.task_width = WIDTHS["task"]

    def compose(self) -> ComposeResult:
        yield Static("", id="pool-line")
        yield Sparkline([0.0], summary_function=max, id="pool-spark")
        yield DataTable(id="agent-table", cursor_type="none", show_cursor=False)

    def on_mount(self) -> None:
        table = self.query_one("#agent-table", DataTable)
        for key in COLUMNS:
            table.add_column(key, key=key, width=self.task_width if key == "task" else WIDTHS[key])

    def on_resize(self, event: Resize) -> None:
        # The pool line's form depends on the width: a pane shown by `w` (hidden, it had
        # no width when the line was made) picks it again here, not at the next tick.
        self._fit_pool_line()
        # The task column takes what the pane has left (ids were cut to 11 characters with
        # a trailing "…" at any width: "perf-agents-cache" and "perf-agents-rate-limit"
        # both read "perf-agents…"); an id still too long is cut in the middle.
        table = self.query_one("#agent-table", DataTable)
        inner = event.size.width - self.styles.gutter.width - 1  # the scrollbar
        fixed = sum(WIDTHS[c] for c in self.columns if c != "task") + 2 * len(self.columns)
        width = max(WIDTHS["task"], min(MAX_TASK_WIDTH, inner - fixed))
        if width == self.task_width:
            return
        self.task_width = width
        # A few rows: rebuilt through the public API (a column's width is not settable).
        table.clear(columns=True)
        for key in self.columns:
            table.add_column(key, key=key, width=width if key == "task" else WIDTHS[key])
        for agent_id, cells in self.cells.items():
            cells += ("",) * (len(self.columns) - len(cells))  # a row from before the worker column
            table.add_row(*(self._cell(c, v) for c, v in zip(self.columns, cells)), key=agent_id)

    def show(self, run: RunInfo, agents: list[AgentRow], util: dict[str, list[float]] | None,
             pool_util: list[float] | None, done_by_agent: dict[str, int] | None = None,
             now: float | None = None) -> None:
        table = self.query_one("#agent-table", DataTable)
        for a in agents:
            self.agents[a.agent_id] = a
            if a.worker and WORKER_COLUMN not in self.columns:
                self.columns = COLUMNS + (WORKER_COLUMN,)
                table.add_column(WORKER_COLUMN, key=WORKER_COLUMN, width=WIDTHS[WORKER_COLUMN], default=Text(""))
        if util is not None:
            self.util = util
        with_worker = WORKER_COLUMN in self.columns
        for agent_id, a in self.agents.items():
            if a.role != "implementer" and a.state == "idle":
                continue
            done = done_by_agent.get(agent_id, 0) if done_by_agent is not None else a.tasks_done
            new = (a.agent_id, a.state, a.task_id or "-", str(done), spark(self.util.get(agent_id, []), 10, 1.0))
            if with_worker:
                new += (a.worker or "-",)
            old = self.cells.get(agent_id)
            if old is None:
                table.add_row(*(self._cell(c, v) for c, v in zip(self.columns, new)), key=agent_id)
            else:
                for column, before, after in zip(self.columns, old + ("",) * (len(new) - len(old)), new):
                    if before != after:
                        table.update_cell(agent_id, column, self._cell(column, after))
            self.cells[agent_id] = new
        sparkline = self.query_one(Sparkline)
        if pool_util is not None and pool_util != sparkline.data:
            sparkline.data = pool_util
        live = sum(1 for a in self.agents.values() if a.role == "implementer" and a.state != "retired")
        busy = sum(1 for a in self.agents.values() if a.state == "busy")
        # The mean over the buckets since the run started: over the whole 5 minutes a young
        # run read "util 4%" with 6 of 8 agents busy since it began (empty minutes before it).
        span = len(pool_util) if pool_util else 0
        if span and now is not None and run.created_at:
            span = min(span, max(1, math.ceil((now - run.created_at) / StoreView.UTIL_BUCKET_SECONDS)))
        recent = pool_util[-span:] if span else []
        mean = (sum(recent) / len(recent) * 100) if recent else 0.0
        window = "5m" if not pool_util or span == len(pool_util) else coarse_age(span * StoreView.UTIL_BUCKET_SECONDS)
        # busy is now; util is the pool's busy share over the sparkline's window (5 min). The
        # pool's limits give way when the pane is narrow, never the utilisation ("util 5m"
        # without its figure at 200x55).
        busy_util = f" · busy now {busy} · util {window} {mean:.0f}%"
        self._pool_line_choices = (
            f"pool {live} live (target {run.pool_target}, min {run.pool_min} / max {run.pool_max})" + busy_util,
            f"pool {live} live, target {run.pool_target}" + busy_util,
        )
        self._fit_pool_line()
        title = f"Agents {busy}/{live}"
        if title != self.border_title:
            self.border_title = title

    def _fit_pool_line(self) -> None:
        full, short = self._pool_line_choices
        line = full if Text(full).cell_len <= self.size.width else short  # size: inside the border
        # Only on a change: Static.update re-lays out the screen, and this runs every tick.
        if line != self._pool_line:
            self._pool_line = line
            self.query_one("#pool-line", Static).update(Text(line))

    def _cell(self, column: str, value: str) -> Text:
        if column == "state":
            return status_text(self.app, value)
        if column == WORKER_COLUMN and value.endswith(" lost"):
            return Text(inert(value), style=Style(color=theme_color(self.app, "error"), bold=True), no_wrap=True,
                        overflow="ellipsis")
        if column == "task":
            value = shorten_id(value, self.task_width)
        return Text(inert(value), no_wrap=True, overflow="ellipsis", justify="right" if column == "done" else "left")

    def repaint(self) -> None:
        table = self.query_one("#agent-table", DataTable)
        for agent_id, cells in self.cells.items():
            table.update_cell(agent_id, "state", self._cell("state", cells[1]))
