"""Resource gauges pane (room: tui): CPU, memory, disk of the run volume, coordinator RSS, pause."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from hybrid_tui.store.records import ResourceSampleRecord
from hybrid_tui.tui.data import RunInfo, human_bytes, human_duration, inert
from hybrid_tui.tui.panes.style import bar, show_text, spark, theme_color


class ResourceGauges(Static):
    DEFAULT_CSS = """
    ResourceGauges { border: round $primary 60%; height: auto; padding: 0 1; }
    """

    def __init__(self, clock, **kwargs):
        super().__init__("", **kwargs)
        self.clock = clock
        self.samples: list[ResourceSampleRecord] = []
        self.run: RunInfo | None = None
        self.border_title = "Resources"

    def show(self, run: RunInfo, samples: list[ResourceSampleRecord] | None) -> None:
        self.run = run
        if samples is not None:
            self.samples = samples
        self.repaint()

    def repaint(self) -> None:
        app = self.app
        text = Text()
        run = self.run
        if run is not None and run.status == "paused":
            text.append(" PAUSED ", style=Style(bgcolor=theme_color(app, "warning"), color="black", bold=True))
            text.append(f" {inert(run.pause_reason) or 'by operator'}\n")
        if not self.samples:
            text.append("no samples yet", style=Style(dim=True))
            show_text(self, text)
            return
        last = self.samples[-1]
        width = 12
        for label, value, history in (
            ("CPU ", last.cpu_percent, [s.cpu_percent for s in self.samples]),
            ("MEM ", last.memory_percent, [s.memory_percent for s in self.samples]),
            ("DISK", last.disk_percent, [s.disk_percent for s in self.samples]),
        ):
            text.append(f"{label} ")
            text.append_text(bar(app, value / 100, width, warn=0.75, danger=0.9))
            text.append(f" {value:5.1f}% ")
            text.append(spark(history, 10, 100.0), style=Style(color=theme_color(app, "accent")))
            text.append("\n")
        text.append(f"free {human_bytes(last.disk_free_bytes)} · coordinator RSS {human_bytes(last.coordinator_rss_bytes)}")
        age = self.clock() - last.ts
        if age > 30:
            text.append(f"\nlast sample {human_duration(age)} ago", style=Style(color=theme_color(app, "warning")))
        show_text(self, text)
