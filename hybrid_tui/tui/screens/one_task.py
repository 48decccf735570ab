"""A screen about one task (room: tui): what the detail and the dependency tree share. The
app's task keys (retry, rollback, ...) act on ``selected_task_id`` while it is open."""

from __future__ import annotations

from textual.screen import Screen

from hybrid_tui.tui.data import StoreView


class OneTaskScreen(Screen[None]):
    def __init__(self, view: StoreView, task_id: str | None):
        super().__init__()
        self.view = view
        self.task_id = task_id

    @property
    def selected_task_id(self) -> str | None:
        return self.task_id
