"""The task queue's table widget: Textual's DataTable with a lazy, batched update path.

Room: tui. The one module that reaches into DataTable's private state (``_row_locations``,
``_data``, ``_update_count``), because a tick of 10,000 changing rows through the public
``update_cell`` costs ~30 µs a call (a refresh each) and misses the 33 ms tick budget
(bench/console.py). ``tests/tui/test_fast_table.py`` checks that contract against the
pinned Textual version: the same cells as the public path, and the private names present.
"""

from __future__ import annotations

from typing import Callable, Iterable

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey


class TaskTable(DataTable):
    """The task DataTable; the pane owns the data, this is only the widget.

    ``freshen(row_keys or None)`` (set by the pane) brings the given rows, or those in
    the visible window, up to date; it is called before every frame and every cell read.
    """

    freshen: Callable[[Iterable[str] | None], None] | None = None

    # k9s / htop / lazygit keys next to the arrows: j/k down/up, g/G first/last row.
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First", show=False),
        Binding("G", "scroll_bottom", "Last", show=False),
    ]

    def visible_row_keys(self, margin: int = 0) -> list[str]:
        """Keys of the rows on screen (every row is one line high here), plus ``margin``."""
        count = self.row_count
        height = self.size.height
        if not count or height <= 0:
            return []
        top = int(self.scroll_y)
        first, last = max(top - margin, 0), min(top + height + margin, count)
        get_key = self._row_locations.get_key
        return [get_key(index).value for index in range(first, last)]

    def render_lines(self, crop):
        if self.freshen is not None:
            self.freshen(None)
        return super().render_lines(crop)

    def get_cell(self, row_key, column_key):
        if self.freshen is not None:
            self.freshen((row_key.value if isinstance(row_key, RowKey) else row_key,))
        return super().get_cell(row_key, column_key)

    def get_row(self, row_key):
        if self.freshen is not None:
            self.freshen((row_key.value if isinstance(row_key, RowKey) else row_key,))
        return super().get_row(row_key)

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
