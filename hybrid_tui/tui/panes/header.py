"""Header pane (room: tui): run name, status, pause reason, task counts, the forecast finish
(ETA), needs-attention count."""

from __future__ import annotations

import time

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from hybrid_tui.tui.data import RunInfo, inert
from hybrid_tui.tui.panes.style import status_text, theme_color


class RunHeader(Static):
    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.run: RunInfo | None = None
        self.attention = 0
        self.counts: dict[str, int] = {}

    def show(self, run: RunInfo, attention: int | None, counts: dict[str, int] | None) -> None:
        self.run = run
        if attention is not None:
            self.attention = attention
        if counts is not None:
            self.counts = counts
        self.repaint()

    def repaint(self) -> None:
        run = self.run
        if run is None:
            return
        app = self.app
        text = Text()
        text.append(inert(run.mission_name), style="bold")
        text.append(f" {inert(run.run_id)} ", style=Style(dim=True))
        text.append_text(status_text(app, run.status))
        if run.status == "paused" and run.pause_reason:
            text.append(f" ({inert(run.pause_reason)})", style=Style(color=theme_color(app, "warning")))
        total = sum(self.counts.values())
        done = self.counts.get("done", 0)
        running = sum(self.counts.get(s, 0) for s in ("running", "validating", "integrating"))
        text.append(f"  done {done}/{total} · running {running}")
        forecast = run.forecast
        if forecast is not None and run.active and done < total:
            start = forecast.ts
            text.append(f" · ETA {_clock(forecast.finish_at)} ({_clock(start + forecast.low_seconds)}–"
                        f"{_clock(start + forecast.high_seconds)})")
        label = Text(f" needs attention: {self.attention} ", no_wrap=True)
        if self.attention:
            label.stylize(Style(bgcolor=theme_color(app, "error"), color="white", bold=True))
        else:
            label.stylize(Style(dim=True))
        # Two columns: the attention count is never the part that gets cut off.
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        text.no_wrap = True
        text.overflow = "ellipsis"
        grid.add_row(text, label)
        self.update(grid)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))
