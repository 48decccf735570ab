"""Event log pane (room: tui): the run's events, newest at the bottom, as inert text.

RichLog renders a line at the width it had when written; the lines are kept and written
again when the pane's width changes, so a resize from 80 to 200 columns does not keep
lines cut at 80."""

from __future__ import annotations

import time as _time
from collections import deque

from rich.style import Style
from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from hybrid_tui.store.records import EventRecord
from hybrid_tui.tui.data import inert
from hybrid_tui.tui.panes.style import theme_color


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { border: round $primary 60%; scrollbar-size-vertical: 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(max_lines=1000, wrap=False, markup=False, highlight=False, auto_scroll=True, **kwargs)
        self.border_title = "Events"
        self.count = 0
        self.kept: deque[Text] = deque(maxlen=1000)
        self._written_width = 0

    def on_resize(self, event: Resize) -> None:
        super().on_resize(event)
        width = event.size.width
        if self.kept and self._written_width and width != self._written_width:
            self.clear()
            for line in self.kept:
                self.write(line)
        self._written_width = width

    def add(self, events: list[EventRecord]) -> None:
        app = self.app
        for e in events:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(_time.strftime("%H:%M:%S", _time.localtime(e.ts)) + " ", style=Style(dim=True))
            role = {"error": "error", "warning": "warning"}.get(e.level)
            line.append(f"{inert(e.kind)} ", style=Style(color=theme_color(app, role), bold=True) if role else Style(bold=True))
            if e.task_id:
                line.append(f"{inert(e.task_id)} ", style=Style(color=theme_color(app, "accent")))
            line.append(inert(e.message))
            self.write(line)
            self.kept.append(line)
            self.count += 1
        self.border_title = f"Events {self.count}"
