"""Attention screen (room: tui): tasks that need a human, with the reason.

Failed after retries, git conflicts, refused rollbacks, blocked dependents: whatever the
coordinator recorded in ``Task.attention_reason`` (or a failed / blocked status).
Enter opens the task's detail; r / c / b act on the highlighted task like on the dashboard.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist

from hybrid_tui.store.records import TaskRow
from hybrid_tui.tui.data import inert
from hybrid_tui.tui.fast_table import StableFooter
from hybrid_tui.tui.panes.style import status_text


class AttentionScreen(Screen[None]):
    DEFAULT_CSS = """
    AttentionScreen #attention-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    AttentionScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,a", "app.pop_screen", "Back"),
        Binding("enter", "open", "Detail"),
        Binding("r", "app.retry", "Retry"),
        Binding("c", "app.cancel_dependents", "Cancel deps"),
        Binding("b", "app.rollback", "Rollback"),
    ]

    def __init__(self, rows: list[TaskRow]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Needs attention: {len(self.rows)} task(s)"), id="attention-title")
        yield DataTable(id="attention-table", cursor_type="row")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.show(self.rows)

    def show(self, rows: list[TaskRow]) -> None:
        """Keyed refresh: keep the highlighted task highlighted."""
        self.rows = rows
        table = self.query_one(DataTable)
        if not table.columns:
            width = self.app.size.width
            reason_width = max(20, width - 14 - 12 - 18 - 10)
            for key, w in (("task", 14), ("status", 12), ("failure", 18), ("reason", reason_width)):
                table.add_column(key, key=key, width=w)
        selected = self.selected_task_id
        wanted = {r.task_id: r for r in rows}
        for key in [k.value for k in list(table.rows) if k.value not in wanted]:
            table.remove_row(key)
        for r in rows:
            cells = (
                Text(inert(r.task_id)),
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
