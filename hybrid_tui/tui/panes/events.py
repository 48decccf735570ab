"""Event log pane (room: tui): the run's events, newest at the bottom, as inert text."""

from __future__ import annotations

import time as _time

from rich.style import Style
from rich.text import Text
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
            self.count += 1
        self.border_title = f"Events {self.count}"
