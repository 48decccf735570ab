"""Attention screen (room: tui): tasks that need a human, with the reason.

Failed after retries, git conflicts, refused rollbacks, blocked dependents: whatever the
coordinator recorded in ``Task.attention_reason`` (or a failed / blocked status).
Enter opens the task's detail; r / c / b act on the highlighted task like on the dashboard; escape, a
or q go back.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist

from hybrid_tui.store.records import TaskRow
from hybrid_tui.tui.data import inert
from hybrid_tui.tui.fast_table import StableFooter
from hybrid_tui.tui.panes.style import id_width, shorten_id, status_text


class AttentionScreen(Screen[None]):
    DEFAULT_CSS = """
    AttentionScreen #attention-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    AttentionScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,a,q", "app.pop_screen", "Back"),  # q: back, as on the detail, the tree and the log (it quit the console here)
        Binding("enter", "open", "Detail"),
        Binding("r", "app.retry", "Retry"),
        Binding("c", "app.cancel_dependents", "Cancel deps"),
        Binding("b", "app.rollback", "Rollback"),
    ]

    def __init__(self, rows: list[TaskRow]):
        super().__init__()
        self.rows = rows
        self._shown_widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Needs attention: {len(self.rows)} task(s)"), id="attention-title")
        yield DataTable(id="attention-table", cursor_type="row")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.show(self.rows)

    def _widths(self, rows: list[TaskRow], width: int) -> dict[str, int]:
        """The task column keeps every id whole up to 30 columns, distinct below (it was cut
        to 14 with no mark at any width: "a11y-search-fi"); the reason takes the rest."""
        task = max(len("task"), id_width([r.task_id for r in rows], 30))
        return {"task": task, "status": 12, "failure": 18, "reason": max(20, width - task - 12 - 18 - 10)}

    def on_resize(self, event: Resize) -> None:
        self.show(self.rows, width=event.size.width)

    def show(self, rows: list[TaskRow], *, width: int | None = None) -> None:
        """Keyed refresh: keep the highlighted task highlighted."""
        self.rows = rows
        table = self.query_one(DataTable)
        widths = self._widths(rows, width or self.app.size.width)
        if widths != self._shown_widths:
            selected = self.selected_task_id if table.columns else None
            table.clear(columns=True)  # a few rows: rebuilt through the public API
            for key, w in widths.items():
                table.add_column(key, key=key, width=w)
            self._shown_widths = widths
        else:
            selected = self.selected_task_id
        wanted = {r.task_id: r for r in rows}
        for key in [k.value for k in list(table.rows) if k.value not in wanted]:
            table.remove_row(key)
        for r in rows:
            cells = (
                Text(inert(shorten_id(r.task_id, widths["task"]))),
                status_text(self.app, r.status),
                Text(inert(r.failure_type or "-")),
                Text(inert(r.attention_reason or f"{r.status}"), overflow="ellipsis", no_wrap=True),
            )
            if r.task_id in table.rows:
                for column, value in zip(("task", "status", "failure", "reason"), cells):
                    table.update_cell(r.task_id, column, value)
            else:
                table.add_row(*cells, key=r.task_id)
        if selected in wanted:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        self.query_one("#attention-title", Static).update(Text(f"Needs attention: {len(rows)} task(s)"))

    @property
    def selected_task_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def action_open(self) -> None:
        task_id = self.selected_task_id
        if task_id:
            self.app.open_detail(task_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.open_detail(event.row_key.value)
