"""Agent pool pane (room: tui): each slot's state and task, utilisation sparklines, pool size;
with workers (``run --broker``), each slot's worker and host, and a worker lost."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static

from hybrid_tui.store.records import AgentRow
from hybrid_tui.tui.data import RunInfo, inert
from hybrid_tui.tui.panes.style import spark, status_text, theme_color

COLUMNS = ("agent", "state", "task", "done", "util")
WORKER_COLUMN = "worker"  # shown once a slot runs on a worker (an in-process run never shows it)


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
        self.columns: tuple[str, ...] = COLUMNS
        self.border_title = "Agents"

    def compose(self) -> ComposeResult:
        yield Static("", id="pool-line")
        yield Sparkline([0.0], summary_function=max, id="pool-spark")
        yield DataTable(id="agent-table", cursor_type="none", show_cursor=False)

    def on_mount(self) -> None:
        table = self.query_one("#agent-table", DataTable)
        for key, width in zip(COLUMNS, (9, 8, 12, 4, 10)):
            table.add_column(key, key=key, width=width)

    def show(self, run: RunInfo, agents: list[AgentRow], util: dict[str, list[float]] | None,
             pool_util: list[float] | None, done_by_agent: dict[str, int] | None = None) -> None:
        table = self.query_one("#agent-table", DataTable)
        for a in agents:
            self.agents[a.agent_id] = a
            if a.worker and WORKER_COLUMN not in self.columns:
                self.columns = COLUMNS + (WORKER_COLUMN,)
                table.add_column(WORKER_COLUMN, key=WORKER_COLUMN, width=18, default=Text(""))
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
        mean = (sum(pool_util) / len(pool_util) * 100) if pool_util else 0.0
        line = Text()
        line.append(f"pool {live} live (target {run.pool_target}, min {run.pool_min} / max {run.pool_max})")
        # busy is now; util is the pool's busy share over the sparkline's window (5 min).
        line.append(f" · busy now {busy} · util 5m {mean:.0f}%")
        # Only on a change: Static.update re-lays out the screen, and this runs every tick.
        if line.plain != self._pool_line:
            self._pool_line = line.plain
            self.query_one("#pool-line", Static).update(line)
        title = f"Agents {busy}/{live}"
        if title != self.border_title:
            self.border_title = title

    def _cell(self, column: str, value: str) -> Text:
        if column == "state":
            return status_text(self.app, value)
        if column == WORKER_COLUMN and value.endswith(" lost"):
            return Text(inert(value), style=Style(color=theme_color(self.app, "error"), bold=True), no_wrap=True,
                        overflow="ellipsis")
        return Text(inert(value), no_wrap=True, overflow="ellipsis", justify="right" if column == "done" else "left")

    def repaint(self) -> None:
        table = self.query_one("#agent-table", DataTable)
        for agent_id, cells in self.cells.items():
            table.update_cell(agent_id, "state", self._cell("state", cells[1]))
