"""Task queue pane (room: tui): a keyed DataTable of every task, sortable and filterable.

Rows are keyed by task id and changed with ``update_cell`` only where a cell's text
changed, inside ``App.batch_update``: the cursor and the scroll position stay put while
the coordinator rewrites rows underneath.

Layout: the columns are chosen and sized for the pane's width on mount and on every resize
(narrow panes drop score, agent and attempts; ids get the width that keeps them all
distinct, cut in the middle when they must be, see :func:`~hybrid_tui.tui.panes.style.id_width`; the title takes
what is left). Marks (space) and the ``/`` search live here too.

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
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import Input
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from hybrid_tui.store.records import TaskRow
from hybrid_tui.tui.data import coarse_age, inert
from hybrid_tui.tui.fast_table import TaskTable
from hybrid_tui.tui.panes.style import MIN_ID, id_width, is_compact, shorten_id, status_text
from hybrid_tui.vocabulary import IN_FLIGHT_STATUSES

COLUMNS = ("mark", "id", "title", "status", "score", "agent", "att", "cost", "time")
HEADERS = {"mark": " "}
WIDTHS = {"mark": 1, "status": 11, "score": 5, "agent": 8, "att": 3, "cost": 6, "time": 9}
# Which columns a pane this wide shows (the narrowest first): identity and state always.
TIERS = ((100, COLUMNS), (0, ("mark", "id", "title", "status", "cost", "time")))
MIN_TITLE, CELL_PADDING = 8, 2  # DataTable pads each cell one column each side
MARK = "●"
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


def time_cell(row: TaskRow, now: float) -> str:
    """One meaning per prefix (the old "age" meant three things): ``run`` time in the current
    attempt, ``took`` for a finished one, ``wait`` since the task was created otherwise."""
    if row.finished_at is not None:
        return "took " + coarse_age(row.finished_at - (row.started_at or row.created_at))
    if row.started_at is not None and row.status in IN_FLIGHT_STATUSES:
        return "run " + coarse_age(now - row.started_at)
    return "wait " + coarse_age(now - row.created_at)


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

    BINDINGS = [Binding("escape", "close_search", "Clear search", show=False)]

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
        self.shown_columns: tuple[str, ...] = ()
        self.id_cap = 14
        self.id_width_now = 14
        self.shown_id: dict[str, str] = {}  # the id as its cell shows it -> the task id (sorting reads cells)
        self.marked: set[str] = set()
        self.search = ""  # `/`: a case-insensitive substring of the id or the title
        self._layout_width = -1

    def compose(self) -> ComposeResult:
        table = TaskTable(id="task-table", cursor_type="row", zebra_stripes=False)
        # The cursor row's colours win over the status colours: a coloured status on the
        # cursor's background read at ~1.3:1.
        table.cursor_foreground_priority = "css"
        table.freshen = self._freshen
        yield table
        search = Input(placeholder="search id or title (enter: keep, escape: clear)", id="task-search")
        search.display = False
        yield search

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    def on_mount(self) -> None:
        self.relayout(self._pane_width())
        self._retitle()

    def _pane_width(self) -> int:
        """Our content width (inside the border): ours once laid out, else what the app's
        layout will give us."""
        if self.size.width > 0:
            return self.size.width
        width = self.app.size.width
        compact = is_compact(width, self.app.size.height)
        return (width if compact else width - min(62, int(width * 0.4))) - 2

    def on_resize(self, event: Resize) -> None:
        # The event's size is the widget's outer size; the columns live inside the border.
        self.relayout(event.size.width - self.styles.gutter.width)

    def relayout(self, width: int) -> None:
        """Choose and size the columns for a pane whose content is ``width`` wide (mount,
        every resize)."""
        if width == self._layout_width or width <= 0:
            return
        self._layout_width = width
        inner = width - 1  # the vertical scrollbar
        shown = next(columns for least, columns in TIERS if inner >= least)
        fixed = sum(WIDTHS[c] for c in shown if c in WIDTHS) + CELL_PADDING * len(shown)
        free = max(inner - fixed, MIN_ID + MIN_TITLE)
        self.id_cap = max(MIN_ID, free - max(MIN_TITLE, free // 2))  # the title keeps at least half
        id_w = id_width(self.rows, self.id_cap)
        widths = dict(WIDTHS, id=id_w, title=max(MIN_TITLE, free - id_w))
        table = self.table
        if shown != self.shown_columns:
            self._rebuild(shown, widths)
        else:
            self._resize_columns(widths)
        table.refresh()

    def _resize_columns(self, widths: dict[str, int]) -> None:
        table = self.table
        changed_id = table.columns[self.column_keys["id"]].width != widths["id"]
        for key, column_key in self.column_keys.items():
            column = table.columns[column_key]
            column.width = widths[key]
            column.auto_width = False
        if changed_id:  # the ids' cells are cut to the new width
            self._repush_ids(widths["id"])
        table._require_update_dimensions = True  # column widths changed: Textual re-measures

    def _rebuild(self, shown: tuple[str, ...], widths: dict[str, int]) -> None:
        """New column set: the table is rebuilt (a resize across a tier, not a tick's work)."""
        table = self.table
        selected = self.selected_task_id
        table.clear(columns=True)
        self.shown_columns = shown
        self.column_keys = {key: table.add_column(HEADERS.get(key, key), key=key, width=widths[key]) for key in shown}
        self.id_width_now = widths["id"]
        self.cells.clear()
        self.row_keys.clear()
        self.shown_id.clear()
        now = self._now
        for task_id in sorted(self.rows, key=self.order.__getitem__):
            row = self.rows[task_id]
            if self._shows(row):
                self._add_row(table, row, now)
        self._resort()
        if selected in self.cells:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def _repush_ids(self, width: int) -> None:
        self.id_width_now = width
        self.shown_id.clear()
        id_key = self.column_keys["id"]
        self.table.update_cells((self.row_keys[t], id_key, self._id_cell(t)) for t in self.cells)

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
            MARK if row.task_id in self.marked else "",
            row.task_id,
            row.title,
            row.status,
            f"{row.score:.0f}",
            row.agent_id,
            str(row.attempts),
            f"{row.cost_usd:.2f}",
            time_cell(row, now),
        )

    def _id_cell(self, task_id: str) -> Text:
        shown = inert(shorten_id(task_id, self.id_width_now))
        self.shown_id[shown] = task_id
        return Text(shown, no_wrap=True, overflow="crop")

    def _shows(self, row: TaskRow) -> bool:
        if not _matches(row.status, row.attention_reason, self.filter_name):
            return False
        needle = self.search
        return not needle or needle in row.task_id.lower() or needle in row.title.lower()

    def _cell(self, column: str, value: str) -> Text:
        """The styled cell; shared between cells showing the same text (DataTable renders a
        Text without changing it), so a tick of 10,000 rows builds a few dozen, not 20,000."""
        if column == "id":
            return self._id_cell(value)
        if column == "title":
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
        justify = "right" if column in ("score", "att", "cost", "time") else "left"
        return Text(inert(value), justify=justify, no_wrap=True, overflow="ellipsis")

    def apply(self, changed: list[TaskRow], now: float) -> None:
        """Merge changed rows (add, drop if filtered out); push cells of the visible ones."""
        if not changed:
            return
        self._now = now
        table = self.table
        rows, order, cells, row_keys = self.rows, self.order, self.cells, self.row_keys
        filter_name = self.filter_name
        unfiltered = filter_name == "all" and not self.search
        sort_field = SORT_FIELD.get(self.sort_name)
        age_sort = self.sort_name == "age"
        added = sort_dirty = new_ids = False
        for row in changed:
            task_id = row.task_id
            old = rows.get(task_id)
            rows[task_id] = row
            if old is None:
                order[task_id] = len(order)
                new_ids = True
            elif not sort_dirty and (age_sort or (sort_field is not None and getattr(old, sort_field) != getattr(row, sort_field))):
                sort_dirty = True
            if unfiltered:
                if task_id not in cells:
                    self._add_row(table, row, now)
                    added = True
            elif self._shows(row):
                if task_id not in cells:
                    self._add_row(table, row, now)
                    added = True
            elif task_id in cells:
                table.remove_row(task_id)
                del cells[task_id]
                del row_keys[task_id]
        if new_ids:
            # New ids may need a wider id column to stay distinct (checked only when ids arrive).
            width = id_width(rows, self.id_cap)
            if width != self.id_width_now:
                self._layout_width = -1
                self.relayout(self._pane_width())
        self._freshen(None)
        if added or sort_dirty:
            self._resort()
        self._retitle()

    def _add_row(self, table: TaskTable, row: TaskRow, now: float) -> None:
        new = self._row_cells(row, now)
        keys = self.column_keys
        self.row_keys[row.task_id] = table.add_row(
            *(self._cell(c, v) for c, v in zip(COLUMNS, new) if c in keys), key=row.task_id)
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
                    if before != after and column in column_keys:
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
        status_at = COLUMNS.index("status")
        self.table.update_cells(
            (self.row_keys[task_id], status_key, self._cell("status", cells[status_at]))
            for task_id, cells in self.cells.items()
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
        shown_id = self.shown_id
        table.sort("id", key=lambda cell: self._sort_value(shown_id[cell.plain]), reverse=self.sort_reverse)
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

    def cycle_filter(self, step: int = 1) -> str:
        self.set_filter(FILTERS[(FILTERS.index(self.filter_name) + step) % len(FILTERS)])
        return self.filter_name

    # -- marks and search -------------------------------------------------------------
    def toggle_mark(self, task_id: str) -> bool:
        """Mark or unmark ``task_id``; True when it is marked now."""
        if task_id in self.marked:
            self.marked.discard(task_id)
        else:
            self.marked.add(task_id)
        self._freshen((task_id,))
        self._retitle()
        return task_id in self.marked

    def marked_in_order(self) -> list[str]:
        """The marked tasks still in the table, in the table's order."""
        return [t for t in sorted(self.marked, key=self.order.__getitem__) if t in self.rows]

    def clear_marks(self) -> None:
        marked, self.marked = self.marked, set()
        self._freshen(marked)
        self._retitle()

    def open_search(self) -> None:
        search = self.query_one("#task-search", Input)
        search.display = True
        search.focus()

    def action_close_search(self) -> None:
        search = self.query_one("#task-search", Input)
        if not search.display:
            return
        search.value = ""
        search.display = False
        self.set_search("")
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "task-search":
            event.stop()
            self.set_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "task-search":
            event.stop()
            if not event.value:
                event.input.display = False
            self.table.focus()

    def set_search(self, text: str) -> None:
        self.search = text.strip().lower()
        self.set_filter(self.filter_name)

    def set_filter(self, name: str) -> None:
        """A filter change is an operator action: rebuilding the shown rows is fine here."""
        self.filter_name = name
        table = self.table
        selected = self.selected_task_id
        now = self._now = self.clock()  # rows shown from here on show their age as of now
        for task_id in list(self.cells):
            row = self.rows[task_id]
            if not self._shows(row):
                table.remove_row(task_id)
                del self.cells[task_id]
                del self.row_keys[task_id]
        for task_id in sorted(self.rows, key=self.order.__getitem__):
            row = self.rows[task_id]
            if task_id not in self.cells and self._shows(row):
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
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        search = f" · /{inert(self.search)}" if self.search else ""
        self.border_title = f"Tasks {len(self.cells)}/{len(self.rows)}{marked}{search}"
        self.border_subtitle = f"f {self.filter_name} · s {self.sort_name}{arrow}"
