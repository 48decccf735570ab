"""Attempt log pager (room: tui): the whole log of one attempt (not only its last 4 KB),
scrollable, with follow: while on, new bytes written to the file are appended every tick and
the view stays at the bottom (``f`` toggles it, ``g``/``G`` top/bottom)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Log, Static

from hybrid_tui.tui.data import inert
from hybrid_tui.tui.fast_table import StableFooter

FOLLOW_SECONDS = 0.5
READ_CHUNK = 1 << 20  # a tick reads at most this much new log


class LogScreen(Screen[None]):
    DEFAULT_CSS = """
    LogScreen #log-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    LogScreen Log { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "Bottom", show=False),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, path: Path, title: str, *, follow: bool = True):
        super().__init__()
        self.path = path
        self.title_text = title
        self.follow = follow
        self.read_offset = 0
        self._partial = ""  # a line not finished yet: shown once its newline is written

    def compose(self) -> ComposeResult:
        yield Static("", id="log-title")
        yield Log(id="log-view", auto_scroll=self.follow, highlight=False)
        yield StableFooter(compact=True)

    @property
    def log_view(self) -> Log:
        return self.query_one("#log-view", Log)

    def on_mount(self) -> None:
        self.read_new()
        self._retitle()
        self.log_view.focus()
        self.set_interval(FOLLOW_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.follow:
            self.read_new()

    def read_new(self) -> int:
        """Append what the file gained since the last read; the number of bytes read."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                if size < self.read_offset:  # truncated or replaced: start again
                    self.read_offset, self._partial = 0, ""
                    self.log_view.clear()
                fh.seek(self.read_offset)
                data = fh.read(READ_CHUNK)
        except OSError as exc:
            if self.read_offset == 0 and not self.log_view.line_count:
                self.log_view.write_line(f"(log unavailable: {exc.strerror or exc})")
            return 0
        if not data:
            return 0
        self.read_offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        if lines:
            self.log_view.write_lines([inert(line) for line in lines])
        return len(data)

    def _retitle(self) -> None:
        # The follow state before the path: after it, an 80-column title never showed it.
        title = Text(inert(self.title_text), style="bold", no_wrap=True, overflow="ellipsis")
        title.append("  follow on (f)" if self.follow else "  follow off (f)")
        title.append(f"  {inert(str(self.path))}", style="dim")
        self.query_one("#log-title", Static).update(title)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.log_view.auto_scroll = self.follow
        if self.follow:
            self.read_new()
            self.log_view.scroll_end(animate=False)
        self._retitle()

    def action_top(self) -> None:
        self.follow = False
        self.log_view.auto_scroll = False
        self.log_view.scroll_home(animate=False)
        self._retitle()

    def action_bottom(self) -> None:
        self.log_view.scroll_end(animate=False)

    def action_scroll(self, lines: int) -> None:
        self.log_view.scroll_relative(y=lines, animate=False)
