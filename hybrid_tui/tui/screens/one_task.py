"""A screen about one task (room: tui): what the detail and the dependency tree share. The
app's task keys (retry, rollback, ...) act on ``selected_task_id`` while it is open; j/k and
g/G scroll it as they move through the dashboard's table (they did nothing here)."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen

from hybrid_tui.tui.data import StoreView


class OneTaskScreen(Screen[None]):
    BINDINGS = [
        Binding("j", "scroll_body(1)", "Down", show=False),
        Binding("k", "scroll_body(-1)", "Up", show=False),
        Binding("g", "scroll_body_to(0)", "Top", show=False),
        Binding("G", "scroll_body_to(1)", "Bottom", show=False),
    ]

    def __init__(self, view: StoreView, task_id: str | None):
        super().__init__()
        self.view = view
        self.task_id = task_id

    @property
    def selected_task_id(self) -> str | None:
        return self.task_id

    def _body(self) -> VerticalScroll:
        return self.query_one(VerticalScroll)

    def action_scroll_body(self, lines: int) -> None:
        self._body().scroll_relative(y=lines, animate=False)

    def action_scroll_body_to(self, end: int) -> None:
        body = self._body()
        if end:
            body.scroll_end(animate=False)
        else:
            body.scroll_home(animate=False)
