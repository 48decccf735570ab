"""File locks pane (room: tui): path, holding task, held for, expires in."""

from __future__ import annotations

from rich.text import Text
from textual.events import Resize
from textual.widgets import DataTable

from hybrid_tui.store.records import LockRow
from hybrid_tui.tui.data import human_duration, inert
from hybrid_tui.tui.panes.style import shorten_id

COLUMNS = ("path", "task", "held", "expires")


class FileLocks(DataTable):
    DEFAULT_CSS = """
    FileLocks { border: round $primary 60%; height: auto; max-height: 10; scrollbar-size-vertical: 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(cursor_type="none", show_cursor=False, **kwargs)
        self.cells: dict[str, tuple[str, ...]] = {}
        self.border_title = "File locks 0"

    FIXED = {"task": 12, "held": 7, "expires": 7}

    def on_mount(self) -> None:
        for key, width in zip(COLUMNS, (22, 12, 7, 7)):
            self.add_column(key, key=key, width=width)

    def on_resize(self, event: Resize) -> None:
        # The path takes what the pane has left (the timers were cut at 140 columns); the
        # task column grows to 24 when there is room. Both are cut in the middle when they
        # must be: "perf-agents…" named two tasks, a path's head hid its file name.
        inner = event.size.width - self.styles.gutter.width - 1  # the scrollbar
        timers = self.FIXED["held"] + self.FIXED["expires"] + 2 * len(COLUMNS)
        task = max(self.FIXED["task"], min(24, (inner - timers) // 3))
        path = max(10, inner - timers - task)
        widths = {"path": path, "task": task}
        changed = False
        for key, column in self.columns.items():
            wanted = widths.get(key.value)
            if wanted is not None and column.width != wanted:
                column.width = wanted
                changed = True
        if changed:
            for lock_path, cells in self.cells.items():
                for column in ("path", "task"):
                    self.update_cell(lock_path, column, self._cell(column, cells[COLUMNS.index(column)]))
            self._require_update_dimensions = True
            self.refresh()

    def show(self, locks: list[LockRow], now: float) -> None:
        """Keyed diff by path: add new locks, drop released ones, update the timers."""
        wanted = {}
        for lock in locks:
            expires = lock.expires_at - now
            wanted[lock.path] = (
                lock.path,
                lock.task_id,
                human_duration(now - lock.acquired_at),
                human_duration(expires) if expires > 0 else "expired",
            )
        for path in [p for p in self.cells if p not in wanted]:
            self.remove_row(path)
            del self.cells[path]
        for path, new in wanted.items():
            old = self.cells.get(path)
            if old is None:
                self.add_row(*(self._cell(c, v) for c, v in zip(COLUMNS, new)), key=path)
            else:
                for column, before, after in zip(COLUMNS, old, new):
                    if before != after:
                        self.update_cell(path, column, self._cell(column, after))
            self.cells[path] = new
        self.border_title = f"File locks {len(self.cells)}"

    def _cell(self, column: str, value: str) -> Text:
        justify = "right" if column in ("held", "expires") else "left"
        if column in ("path", "task") and self.columns:
            width = self.columns[column].width if column in self.columns else len(value)
            value = shorten_id(value, width)
        return Text(inert(value), no_wrap=True, overflow="ellipsis", justify=justify)
