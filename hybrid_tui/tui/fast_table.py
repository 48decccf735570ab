"""The console's fast widget paths: the task table's lazy, batched updates and a footer
that recomposes only when its keys change.

Room: tui. The one module that reaches into Textual's private state, each trick named here
and checked against the pinned Textual version by ``tests/tui/test_fast_table.py``:

- :class:`TaskTable` writes DataTable's cell store (``_row_locations``, ``_data``,
  ``_update_count``) because a tick of 10,000 changing rows through the public
  ``update_cell`` costs ~30 µs a call (a refresh each) and misses the 33 ms tick budget
  (bench/console.py).
- :class:`TaskTable` also keeps each rendered cell (``_render_cell``) under the cell
  object it shows, not under DataTable's ``_update_count``: DataTable's cell cache is
  keyed on that count, so ONE changed cell re-rendered every cell on screen through Rich
  (~0.2 ms each: 30 ms a tick at 160x48). Cells are immutable Text objects here (a change
  stores a new one), so a cell still on screen with the same object, place, width, style
  and focus state renders the same lines; a screen switch (focus leaves and comes back)
  finds them again too.
- :class:`TaskTable` computes its own Rich style and each component's (header, row) once
  per render pass (``render_lines``) instead of once per line or row: each walks the
  ancestors' styles, ~0.1 ms, which was a third of repainting the rows a tick changed.
- :class:`TaskTable` keeps its rows' order and line offsets (``ordered_rows``,
  ``_y_offsets``) until rows are added, removed or sorted: DataTable keys both on its update
  count, so a changed cell rebuilt two lists over every row on the next frame (~3 ms at
  10,000 rows, most of an idle repaint there: the ages tick every second).
- :class:`StableFooter`: Textual's Footer recomposes (unmounts and mounts a FooterKey per
  binding, then re-lays out the whole screen) on every "bindings updated" signal, which a
  screen switch sends two or three times with the same keys; that second layout was half
  the CPU of Escape and of opening the detail. It recomposes only when the keys it would
  show (key, label, enabled, tooltip) differ from those it shows.
"""

from __future__ import annotations

from typing import Callable, Iterable

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.css.styles import RenderStyles
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey


class _RichStyleKept(RenderStyles):
    """A component's RenderStyles for one render pass of the table: its Rich style (which
    walks the ancestors' styles) is computed on first use and kept."""

    _kept_rich_style: Style | None = None

    @property
    def rich_style(self) -> Style:
        if self._kept_rich_style is None:
            self._kept_rich_style = super().rich_style
        return self._kept_rich_style


class TaskTable(DataTable):
    """The task DataTable; the pane owns the data, this is only the widget.

    ``freshen(row_keys or None)`` (set by the pane) brings the given rows, or those in
    the visible window, up to date; it is called before every frame and every cell read.
    """

    freshen: Callable[[Iterable[str] | None], None] | None = None
    _pass_style: Style | None = None  # set while a render pass runs (render_lines)
    _pass_component_styles: dict[tuple[str, ...], RenderStyles] | None = None
    cells_rendered = 0  # cells rendered through Rich (a kept one is not counted): for the tests
    KEPT_CELLS = 4096  # a 200x55 screen shows ~500 cells; room for both focus states and a scroll

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept_cells: LRUCache[tuple, tuple[object, list]] = LRUCache(self.KEPT_CELLS)

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
        # DataTable asks for this widget's Rich style on every line and for its header and
        # row component styles on every row it renders; each walks the ancestors' styles
        # (~0.1 ms). Nothing restyles during one render pass: each is computed once per pass.
        self._pass_style = DataTable.rich_style.fget(self)
        self._pass_component_styles = {}
        try:
            return super().render_lines(crop)
        finally:
            self._pass_style = self._pass_component_styles = None

    @property
    def rich_style(self):
        return self._pass_style if self._pass_style is not None else DataTable.rich_style.fget(self)

    def get_component_styles(self, *names: str) -> RenderStyles:
        kept = self._pass_component_styles
        if kept is None:
            return super().get_component_styles(*names)
        styles = kept.get(names)
        if styles is None:
            styles = kept[names] = super().get_component_styles(*names)
            styles.__class__ = _RichStyleKept  # the same object, its rich_style computed once
        return styles

    def get_cell(self, row_key, column_key):
        if self.freshen is not None:
            self.freshen((row_key.value if isinstance(row_key, RowKey) else row_key,))
        return super().get_cell(row_key, column_key)

    def get_row(self, row_key):
        if self.freshen is not None:
            self.freshen((row_key.value if isinstance(row_key, RowKey) else row_key,))
        return super().get_row(row_key)

    def _render_cell(self, row_index, column_index, base_style, width, cursor=False, hover=False):
        if row_index < 0 or column_index < 0:  # the header and row labels: DataTable's own cache
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self._data[self._row_locations.get_key(row_index)].get(self._column_locations.get_key(column_index))
        # The row and column indexes are in the key: DataTable puts them in the segments' meta
        # (what a click selects).
        key = (row_index, column_index, id(cell), width, base_style, cursor, hover, self._show_hover_cursor,
               self._pseudo_class_state)
        kept = self._kept_cells.get(key)
        if kept is not None and kept[0] is cell:  # the object itself, not a new one at a reused id
            return kept[1]
        self.cells_rendered += 1
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._kept_cells[key] = (cell, lines)
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._kept_cells.clear()
        self._rows_moved()

    # -- the rows' order and line offsets: kept until rows are added, removed or re-ordered.
    # DataTable keys both on its update count, so every cell update rebuilt two lists over ALL
    # rows on the next frame (~3 ms at 10,000 rows: most of an idle repaint, whose ages tick).
    _row_layout_version = 0
    _kept_order: tuple[tuple[int, int], list] | None = None
    _kept_offsets: tuple[tuple[int, int], list] | None = None

    def _rows_moved(self) -> None:
        self._row_layout_version += 1

    def add_row(self, *cells, height=1, key=None, label=None):
        if height is None:  # an auto height is measured later, outside what moves the rows
            raise ValueError("TaskTable rows have a fixed height")
        self._rows_moved()
        return super().add_row(*cells, height=height, key=key, label=label)

    def remove_row(self, row_key) -> None:
        self._rows_moved()
        super().remove_row(row_key)

    def clear(self, columns: bool = False):
        self._rows_moved()
        return super().clear(columns)

    def sort(self, *columns, key=None, reverse: bool = False):
        self._rows_moved()
        return super().sort(*columns, key=key, reverse=reverse)

    @property
    def ordered_rows(self):
        version = (self.row_count, self._row_layout_version)
        if self._kept_order is None or self._kept_order[0] != version:
            self._kept_order = (version, DataTable.ordered_rows.fget(self))
        return self._kept_order[1]

    @property
    def _y_offsets(self):
        version = (self.row_count, self._row_layout_version)
        if self._kept_offsets is None or self._kept_offsets[0] != version:
            offsets = [(row.key, y) for row in self.ordered_rows for y in range(row.height)]
            self._kept_offsets = (version, offsets)
        return self._kept_offsets[1]

    def notify_style_update(self) -> None:
        super().notify_style_update()  # a theme or CSS change restyles every cell
        self._kept_cells.clear()

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


class StableFooter(Footer):
    """Footer that skips a recompose which would mount the same keys again (see the module)."""

    _shown_keys: tuple | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Compose the keys with the screen, not empty and then again once the screen says its
        # bindings are ready: a new screen's first frame is also its last layout.
        self.set_reactive(Footer._bindings_ready, True)

    def shown_keys(self, screen: Screen) -> tuple:
        """What ``Footer.compose`` would show for ``screen`` now: one entry per binding shown,
        and the command palette's key."""
        active = screen.active_bindings
        keys = tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip, binding.group)
            for (_, binding, enabled, tooltip) in active.values()
            if binding.show
        )
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return keys + (self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE, palette and palette.enabled)

    def compose(self):
        if self._bindings_ready and self.is_attached:
            self._shown_keys = self.shown_keys(self.screen)
        return super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if (self._bindings_ready and self._shown_keys is not None and self.is_attached
                and screen is self.screen and self.shown_keys(screen) == self._shown_keys):
            return  # the same keys: nothing to mount, no layout
        super().bindings_changed(screen)
