"""Task queue pane (room: tui): a keyed DataTable of every task, sortable and filterable.

Rows are keyed by task id and changed with ``update_cell`` only where a cell's text
changed, inside ``App.batch_update``: the cursor and the scroll position stay put while
the coordinator rewrites rows underneath.
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from ..data import TaskRow, coarse_age, inert
from .style import is_compact, status_text

COLUMNS = ("id", "title", "status", "score", "agent", "att", "cost", "age")
FILTERS = ("all", "active", "pending", "ready", "running", "retry_wait", "failed", "blocked", "done")
ACTIVE = {"ready", "running", "validating", "integrating", "retry_wait"}
SORTS = ("queue", "score", "status", "cost", "age", "attempts", "id")
SORT_COLUMN = {"score": "score", "status": "status", "cost": "cost", "age": "age", "attempts": "att"}


def _matches(status: str, attention: str, filter_name: str) -> bool:
    if filter_name == "all":
        return True
    if filter_name == "active":
        return status in ACTIVE
    if filter_name == "running":
        return status in ("running", "validating", "integrating")
    return status == filter_name


class TaskTable(DataTable):
    """The task DataTable; the pane owns the data, this is only the widget."""

    def update_cells(self, updates: Iterable[tuple[RowKey, ColumnKey, Text]]) -> None:
        """What ``update_cell(row, column, value)`` does for each update, then ONE refresh.

        DataTable.update_cell refreshes the widget on every call (~30 µs) and compares its
        string keys in Python; a tick of 10,000 changing rows makes 20,000 calls. This writes
        the same cell store (keyed by the RowKey/ColumnKey objects add_row/add_column
        returned) and bumps the update count once, which is all update_cell does when the
        column width is left alone (``update_width=False``, its default).
        """
        data = self._data
        for row_key, column_key, value in updates:
            row = data.get(row_key)
            if row is None or column_key not in row:
                raise CellDoesNotExist(f"No cell exists for row_key={row_key!r}, column_key={column_key!r}.")
            row[column_key] = value
        self._update_count += 1
        self.refresh()


class TaskQueue(Vertical):
    DEFAULT_CSS = """
    TaskQueue { border: round $primary 60%; border-title-color: $text; }
    TaskQueue:focus-within { border: round $primary; }
    TaskQueue TaskTable { height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, clock, **kwargs):
        super().__init__(**kwargs)
        self.clock = clock
        self.rows: dict[str, TaskRow] = {}
        self.order: dict[str, int] = {}  # task id -> position in the queue (store order)
        self.cells: dict[str, tuple[str, ...]] = {}  # what each shown row displays now
        self.filter_name = "all"
        self.sort_name = "queue"
        self.sort_reverse = False
        self._cells_made: dict[tuple[str, str], Text] = {}  # (column, text) -> its cell, see _cell
        self.row_keys: dict[str, RowKey] = {}  # task id -> the table's key of its shown row
        self.column_keys: dict[str, ColumnKey] = {}

    def compose(self) -> ComposeResult:
        table = TaskTable(id="task-table", cursor_type="row", zebra_stripes=False)
        table.cursor_foreground_priority = "renderable"
        yield table

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    def on_mount(self) -> None:
        # Fixed widths keep columns from jumping; the title takes what the pane has left.
        width = self.app.size.width
        compact = is_compact(width, self.app.size.height)
        main_width = width if compact else width - min(62, int(width * 0.4))
        title_width = max(12, main_width - (66 if compact else 70))
        widths = dict(id=10 if compact else 14, title=title_width, status=11, score=5, agent=8, att=3, cost=6, age=5)
        for key in COLUMNS:
            self.column_keys[key] = self.table.add_column(key, key=key, width=widths[key])
        self._retitle()

    # -- data -----------------------------------------------------------------------
    @property
    def selected_task_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def _row_cells(self, row: TaskRow, now: float) -> tuple[str, ...]:
        return (
            row.task_id,
            row.title,
            row.status,
            f"{row.score:.0f}",
            row.agent_id,
            str(row.attempts),
            f"{row.cost_usd:.2f}",
            coarse_age(row.age(now)),
        )

    def _cell(self, column: str, value: str) -> Text:
        """The styled cell; shared between cells showing the same text (DataTable renders a
        Text without changing it), so a tick of 10,000 rows builds a few dozen, not 20,000."""
        if column in ("id", "title"):
            return self._make_cell(column, value)
        key = (column, value)
        cell = self._cells_made.get(key)
        if cell is None:
            if len(self._cells_made) >= 4096:
                self._cells_made.clear()
            cell = self._cells_made[key] = self._make_cell(column, value)
        return cell

    def _make_cell(self, column: str, value: str) -> Text:
        if column == "status":
            return status_text(self.app, value)
        justify = "right" if column in ("score", "att", "cost", "age") else "left"
        return Text(inert(value), justify=justify, no_wrap=True, overflow="ellipsis")

    def apply(self, changed: list[TaskRow], now: float) -> None:
        """Merge changed rows into the table (add, update cells, or drop if filtered out)."""
        if not changed:
            return
        table = self.table
        added = False
        sort_dirty = False
        sort_column = SORT_COLUMN.get(self.sort_name)
        column_keys = self.column_keys
        updates: list[tuple[str, str, Text]] = []
        for row in changed:
            if row.task_id not in self.order:
                self.order[row.task_id] = len(self.order)
            self.rows[row.task_id] = row
            shown = row.task_id in self.cells
            wanted = _matches(row.status, row.attention_reason, self.filter_name)
            if shown and not wanted:
                table.remove_row(row.task_id)
                del self.cells[row.task_id]
                del self.row_keys[row.task_id]
            elif wanted:
                new = self._row_cells(row, now)
                if not shown:
                    self.row_keys[row.task_id] = table.add_row(
                        *(self._cell(c, v) for c, v in zip(COLUMNS, new)), key=row.task_id)
                    added = True
                else:
                    old = self.cells[row.task_id]
                    if old != new:
                        for column, before, after in zip(COLUMNS, old, new):
                            if before != after:
                                updates.append((self.row_keys[row.task_id], column_keys[column], self._cell(column, after)))
                                if sort_column == column:
                                    sort_dirty = True
                self.cells[row.task_id] = new
        if updates:
            table.update_cells(updates)
        if added or sort_dirty:
            self._resort()
        self._retitle()

    def refresh_ages(self, now: float) -> None:
        """The age column moves with the clock: update only the cells whose text changed."""
        updates = []
        age_key = self.column_keys["age"]
        for task_id, cells in self.cells.items():
            row = self.rows[task_id]
            if row.finished_at is not None:
                continue
            age = coarse_age(row.age(now))
            if age != cells[7]:
                self.cells[task_id] = cells[:7] + (age,)
                updates.append((self.row_keys[task_id], age_key, self._cell("age", age)))
        if updates:
            self.table.update_cells(updates)

    def repaint(self) -> None:
        """Re-style every shown cell (after a theme change)."""
        self._cells_made.clear()  # styled with the previous theme
        status_key = self.column_keys["status"]
        self.table.update_cells(
            (self.row_keys[task_id], status_key, self._cell("status", cells[2])) for task_id, cells in self.cells.items()
        )

    # -- sorting and filtering ------------------------------------------------------
    def _sort_value(self, task_id: str):
        row = self.rows[task_id]
        name = self.sort_name
        if name == "score":
            return (-row.score, self.order[task_id])
        if name == "status":
            return (row.status, self.order[task_id])
        if name == "cost":
            return (-row.cost_usd, self.order[task_id])
        if name == "age":
            return (-row.age(self.clock()), self.order[task_id])
        if name == "attempts":
            return (-row.attempts, self.order[task_id])
        if name == "id":
            return (row.task_id,)
        return (self.order[task_id],)

    def _resort(self) -> None:
        table = self.table
        selected = self.selected_task_id
        table.sort("id", key=lambda cell: self._sort_value(cell.plain), reverse=self.sort_reverse)
        if selected is not None and selected in self.cells:
            table.move_cursor(row=table.get_row_index(selected), animate=False, scroll=False)

    def cycle_sort(self) -> str:
        self.sort_name = SORTS[(SORTS.index(self.sort_name) + 1) % len(SORTS)]
        self._resort()
        self._retitle()
        return self.sort_name

    def reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._resort()
        self._retitle()

    def cycle_filter(self) -> str:
        self.set_filter(FILTERS[(FILTERS.index(self.filter_name) + 1) % len(FILTERS)])
        return self.filter_name

    def set_filter(self, name: str) -> None:
        """A filter change is an operator action: rebuilding the shown rows is fine here."""
        self.filter_name = name
        table = self.table
        selected = self.selected_task_id
        now = self.clock()
        for task_id in list(self.cells):
            row = self.rows[task_id]
            if not _matches(row.status, row.attention_reason, name):
                table.remove_row(task_id)
                del self.cells[task_id]
                del self.row_keys[task_id]
        for task_id in sorted(self.rows, key=self.order.__getitem__):
            row = self.rows[task_id]
            if task_id not in self.cells and _matches(row.status, row.attention_reason, name):
                new = self._row_cells(row, now)
                self.row_keys[task_id] = table.add_row(*(self._cell(c, v) for c, v in zip(COLUMNS, new)), key=task_id)
                self.cells[task_id] = new
        self._resort()
        if selected in self.cells:
            try:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
            except RowDoesNotExist:
                pass
        self._retitle()

    def _retitle(self) -> None:
        arrow = "↑" if self.sort_reverse else "↓"
        self.border_title = f"Tasks {len(self.cells)}/{len(self.rows)}"
        self.border_subtitle = f"f filter: {self.filter_name} · s sort: {self.sort_name}{arrow}"
