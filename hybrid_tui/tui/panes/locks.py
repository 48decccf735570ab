"""File locks pane (room: tui): path, holding task, held for, expires in."""

from __future__ import annotations

from rich.text import Text
from textual.events import Resize
from textual.widgets import DataTable

from hybrid_tui.store.records import LockRow
from hybrid_tui.tui.data import human_duration, inert

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
        # The path takes what the pane has left (the timers were cut at 140 columns).
        inner = event.size.width - self.styles.gutter.width - 1  # the scrollbar
        path = max(10, inner - sum(self.FIXED.values()) - 2 * len(COLUMNS))
        column = next(iter(self.columns.values()), None)  # the path column
        if column is not None and column.width != path:
            column.width = path
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

    @staticmethod
    def _cell(column: str, value: str) -> Text:
        justify = "right" if column in ("held", "expires") else "left"
        return Text(inert(value), no_wrap=True, overflow="ellipsis", justify=justify)
