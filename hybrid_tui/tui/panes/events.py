"""Event log pane (room: tui): the run's events, newest at the bottom, as inert text.

RichLog renders a line at the width it had when written; the lines are kept and written
again when the pane's width changes, so a resize from 80 to 200 columns does not keep
lines cut at 80. Each line is written at the pane's width, cut with "…": at its own width a
long line scrolled sideways, cut with no mark, and its scrollbar took one of the compact
layout's four event rows."""

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
    EventLog { border: round $primary 60%; scrollbar-size-vertical: 1; overflow-x: hidden; }
    """

    def __init__(self, **kwargs):
        super().__init__(max_lines=1000, wrap=False, markup=False, highlight=False, auto_scroll=True, **kwargs)
        self.border_title = "Events"
        self.count = 0
        self.kept: deque[Text] = deque(maxlen=1000)
        self._written_width = 0

    def on_resize(self, event: Resize) -> None:
        super().on_resize(event)
        width = self.size.width  # inside the border (the event's is outside)
        if self.kept and width != self._written_width:  # lines written before a size was known too
            self.clear()
            for line in self.kept:
                self._write_fitted(line)
        self._written_width = width

    def _fit(self, line: Text) -> Text:
        """``line`` cut with "…" to the pane's inside less the vertical scrollbar (RichLog
        writes a no-wrap Text with overflow "ignore": it never cuts with a mark itself)."""
        inside = self.size.width - 1  # size: inside the border
        if inside <= 0 or line.cell_len <= inside:
            return line
        fitted = line.copy()
        fitted.truncate(inside, overflow="ellipsis")
        return fitted

    def _write_fitted(self, line: Text) -> None:
        # At its own width: left to itself, RichLog shrinks a line to its content region as
        # of the last layout, which inside on_resize is the old one (cut at 80 after 80 -> 200).
        fitted = self._fit(line)
        self.write(fitted, width=max(fitted.cell_len, 1))

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
            self._write_fitted(line)
            self._written_width = self.size.width
            self.kept.append(line)
            self.count += 1
        self.border_title = f"Events {self.count}"
