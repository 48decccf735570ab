"""Task queue pane (room: tui): a keyed DataTable of every task, sortable and filterable.

Rows are keyed by task id and changed with ``update_cell`` only where a cell's text
changed, inside ``App.batch_update``: the cursor and the scroll position stay put while
the coordinator rewrites rows underneath.

Lazy cells: a tick stores every changed :class:`TaskRow` (sorting and filtering read those,
never the rendered cells) but formats and pushes cells only for the rows on screen plus a
margin. A row off screen keeps the text it last showed until it is rendered or read: the
table asks the pane to bring rows up to date before it renders a frame and in ``get_cell``
/ ``get_row``, so what the operator (or a test) sees is always the latest row.
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from hybrid_tui.store.records import TaskRow
from hybrid_tui.tui.data import coarse_age, inert
from hybrid_tui.tui.fast_table import TaskTable
from hybrid_tui.tui.panes.style import is_compact, status_text
from hybrid_tui.vocabulary import IN_FLIGHT_STATUSES

COLUMNS = ("id", "title", "status", "score", "agent", "att", "cost", "age")
FILTERS = ("all", "active", "pending", "awaiting_approval", "ready", "running", "retry_wait", "failed", "blocked",
           "done")
# The "active" filter: what is started or could start now (not pending, not terminal).
ACTIVE_FILTER = IN_FLIGHT_STATUSES | {"ready", "retry_wait"}
# The status column is as wide as "integrating"; a longer status gets a label that fits.
NARROW_STATUS_LABELS = {"awaiting_approval": "approval?"}
SORTS = ("queue", "score", "status", "cost", "age", "attempts", "id")
# The TaskRow field a sort reads: a changed value there means the order may change.
SORT_FIELD = {"score": "score", "status": "status", "cost": "cost_usd", "attempts": "attempts"}
WINDOW_MARGIN = 8  # rows above and below the screen kept up to date on every tick


def _matches(status: str, attention: str, filter_name: str) -> bool:
    if filter_name == "all":
        return True
    if filter_name == "active":
        return status in ACTIVE_FILTER
    if filter_name == "running":
        return status in IN_FLIGHT_STATUSES
    return status == filter_name


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
        self.cells: dict[str, tuple[str, ...]] = {}  # shown rows -> the text last pushed to the table
        self._now = 0.0  # the clock of the latest tick: ages are shown as of then
        self.filter_name = "all"
        self.sort_name = "queue"
        self.sort_reverse = False
        self._cells_made: dict[tuple[str, str], Text] = {}  # (column, text) -> its cell, see _cell
        self.row_keys: dict[str, RowKey] = {}  # task id -> the table's key of its shown row
        self.column_keys: dict[str, ColumnKey] = {}

    def compose(self) -> ComposeResult:
        table = TaskTable(id="task-table", cursor_type="row", zebra_stripes=False)
        table.cursor_foreground_priority = "renderable"
        table.freshen = self._freshen
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
            return status_text(self.app, value, label=NARROW_STATUS_LABELS.get(value))
        justify = "right" if column in ("score", "att", "cost", "age") else "left"
        return Text(inert(value), justify=justify, no_wrap=True, overflow="ellipsis")

    def apply(self, changed: list[TaskRow], now: float) -> None:
        """Merge changed rows (add, drop if filtered out); push cells of the visible ones."""
        if not changed:
            return
        self._now = now
        table = self.table
        rows, order, cells, row_keys = self.rows, self.order, self.cells, self.row_keys
        filter_name = self.filter_name
        sort_field = SORT_FIELD.get(self.sort_name)
        age_sort = self.sort_name == "age"
        added = sort_dirty = False
        for row in changed:
            task_id = row.task_id
            old = rows.get(task_id)
            rows[task_id] = row
            if old is None:
                order[task_id] = len(order)
            elif not sort_dirty and (age_sort or (sort_field is not None and getattr(old, sort_field) != getattr(row, sort_field))):
                sort_dirty = True
            if filter_name == "all":
                if task_id not in cells:
                    self._add_row(table, row, now)
                    added = True
            elif _matches(row.status, row.attention_reason, filter_name):
                if task_id not in cells:
                    self._add_row(table, row, now)
                    added = True
            elif task_id in cells:
                table.remove_row(task_id)
                del cells[task_id]
                del row_keys[task_id]
        self._freshen(None)
        if added or sort_dirty:
            self._resort()
        self._retitle()

    def _add_row(self, table: TaskTable, row: TaskRow, now: float) -> None:
        new = self._row_cells(row, now)
        self.row_keys[row.task_id] = table.add_row(*(self._cell(c, v) for c, v in zip(COLUMNS, new)), key=row.task_id)
        self.cells[row.task_id] = new

    def _freshen(self, task_ids: Iterable[str] | None) -> None:
        """Push the latest text of ``task_ids`` (default: the visible window) where it changed."""
        table = self.table
        if task_ids is None:
            task_ids = table.visible_row_keys(WINDOW_MARGIN)
        rows, cells, row_keys, column_keys = self.rows, self.cells, self.row_keys, self.column_keys
        now = self._now
        updates: list[tuple[RowKey, ColumnKey, Text]] = []
        for task_id in task_ids:
            old = cells.get(task_id)
            if old is None:
                continue
            new = self._row_cells(rows[task_id], now)
            if old != new:
                row_key = row_keys[task_id]
                for column, before, after in zip(COLUMNS, old, new):
                    if before != after:
                        updates.append((row_key, column_keys[column], self._cell(column, after)))
                cells[task_id] = new
        if updates:
            table.update_cells(updates)

    def refresh_ages(self, now: float) -> None:
        """The age column moves with the clock: rows on screen now, the others when shown."""
        self._now = now
        self._freshen(None)

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
        now = self._now = self.clock()  # rows shown from here on show their age as of now
        for task_id in list(self.cells):
            row = self.rows[task_id]
            if not _matches(row.status, row.attention_reason, name):
                table.remove_row(task_id)
                del self.cells[task_id]
                del self.row_keys[task_id]
        for task_id in sorted(self.rows, key=self.order.__getitem__):
            row = self.rows[task_id]
            if task_id not in self.cells and _matches(row.status, row.attention_reason, name):
                self._add_row(table, row, now)
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
