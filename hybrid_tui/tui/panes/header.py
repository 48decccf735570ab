"""Header pane (room: tui): what the run is doing and what it costs, in two lines.

Line 1: mission, run id, status (with the pause reason; "finished" says how many tasks did
not succeed; "COORDINATOR LOST" when its heartbeat stopped), task counts, needs-attention.
Line 2: elapsed time, spend and its rate ($/h), the ETA (the forecast's slot, see
:func:`eta_text`), and the live pool.
"""

from __future__ import annotations

import time

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.events import Resize
from textual.widget import Widget

from hybrid_tui.tui.data import (
    NO_VALUE,
    CostSummary,
    RunInfo,
    human_duration,
    inert,
    money,
)
from hybrid_tui.tui.panes.style import shorten_id, status_text, theme_color
from hybrid_tui.vocabulary import UNSUCCESSFUL_STATUSES


def eta_text(run: RunInfo, now: float) -> str:
    """The forecast finish (the estimate simulator started from the run's state, refreshed as
    tasks end) with its range; NO_VALUE while there is none or the run is not live."""
    forecast = run.forecast
    if forecast is None or not run.active or not forecast.tasks_left:
        return NO_VALUE
    start = forecast.ts
    return (f"{_clock(forecast.finish_at)} ({_clock(start + forecast.low_seconds)}–"
            f"{_clock(start + forecast.high_seconds)})")


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def spend_rate(spent_usd: float, elapsed_seconds: float) -> float | None:
    """Dollars per hour over the run so far (None in its first minute: too noisy to show)."""
    if elapsed_seconds < 60:
        return None
    return spent_usd / (elapsed_seconds / 3600.0)


class RunHeader(Widget):
    """A Widget drawing its own lines (not a Static): ``Static.update`` re-lays out the
    screen every call, and the elapsed time changes every second; a fixed-height widget's
    repaint needs no layout (idle CPU, issue 21)."""

    DEFAULT_CSS = """
    RunHeader { height: 2; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._content: Group | Text = Text("")
        self.run: RunInfo | None = None
        self.attention = 0
        self.counts: dict[str, int] = {}
        self.costs = CostSummary()
        self.now = 0.0
        self.coordinator_lost = False
        self._shown_second = -1

    def show(self, run: RunInfo, attention: int | None, counts: dict[str, int] | None,
             costs: CostSummary | None = None, now: float | None = None) -> None:
        self.run = run
        if attention is not None:
            self.attention = attention
        if counts is not None:
            self.counts = counts
        if costs is not None:
            self.costs = costs
        if now is not None:
            self.now = now
        self.repaint()

    def tick(self, now: float) -> None:
        """The elapsed time moves with the clock: repaint once a second at most."""
        self.now = now
        if int(now) != self._shown_second and self.run is not None and self.run.finished_at is None:
            self.repaint()

    def elapsed(self) -> float:
        run = self.run
        if run is None or not run.created_at:
            return 0.0
        return max(0.0, (run.finished_at or self.now) - run.created_at)

    def repaint(self) -> None:
        run = self.run
        if run is None:
            return
        self._shown_second = int(self.now)
        app = self.app
        label = Text(f" needs attention: {self.attention} ", no_wrap=True)
        if self.attention:
            label.stylize(Style(bgcolor=theme_color(app, "error"), color="white", bold=True))
        else:
            label.stylize(Style(dim=True))
        state = Text()
        unsuccessful = sum(self.counts.get(s, 0) for s in UNSUCCESSFUL_STATUSES)
        if self.coordinator_lost and run.active:
            state.append(f"{run.status}: COORDINATOR LOST", style=Style(color=theme_color(app, "error"), bold=True))
        elif run.status == "finished" and unsuccessful:
            # Not a green "finished": the run ended with work undone.
            state.append(f"finished, {unsuccessful} not done", style=Style(color=theme_color(app, "error"), bold=True))
        else:
            state.append_text(status_text(app, run.status))
        total = sum(self.counts.values())
        done = self.counts.get("done", 0)
        running = sum(self.counts.get(s, 0) for s in ("running", "validating", "integrating"))
        state.append(f"  done {done}/{total} · running {running}")
        reason = Text()
        if run.status == "paused" and run.pause_reason:
            # After the counts: a policy's long reason is what gets cut, not them (the whole
            # "done 3/18 · running 1" went off screen at 80 columns). The detail is in the events.
            reason.append(f"  ({inert(run.pause_reason)})", style=Style(color=theme_color(app, "warning")))
        # What gives way when the line is too narrow: the run id first (cut in the middle,
        # then left out), then the pause reason, never the counts ("runni…" at 80 columns).
        room = self.size.width - label.cell_len  # size: inside the padding
        mission = inert(run.mission_name)
        run_id = inert(run.run_id)
        spare = room - len(mission) - state.cell_len - min(reason.cell_len, 40) - 2  # a pause's reason before the id
        if spare < len(run_id):
            run_id = shorten_id(run_id, spare) if spare >= 8 else ""
        if not run_id:  # then the mission's name, down to a recognisable head and tail
            mission = shorten_id(mission, max(room - state.cell_len - 1, 8))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(mission, style="bold")
        text.append(f" {run_id} " if run_id else " ", style=Style(dim=True))
        text.append_text(state)
        text.append_text(reason)

        elapsed = self.elapsed()
        costs = self.costs
        rate = spend_rate(costs.spent_usd, elapsed)
        second = Text(no_wrap=True, overflow="ellipsis")
        second.append(f"elapsed {human_duration(elapsed)}")
        second.append(f" · spent {money(costs.spent_usd)}")
        if costs.mission_budget_usd:
            second.append(f"/{money(costs.mission_budget_usd)}")
        second.append(f" · {money(rate)}/h" if rate is not None else f" · {NO_VALUE}/h")
        # No ETA for a run nobody drives (it went on showing the forecast after a SIGKILL).
        second.append(f" · ETA {NO_VALUE if self.coordinator_lost else eta_text(run, self.now)}")
        if self.coordinator_lost and not run.active:
            second.append(" · no coordinator: commands are not sent", style=Style(dim=True))
        # Line 1 in two columns (the attention count is never the part that gets cut off);
        # line 2 on its own: as a second row of that grid it lost the label's width (the
        # ETA's range was cut at 80 columns next to 20 empty ones).
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(text, label)
        grid = Group(grid, second)
        self._content = grid
        self.refresh()

    def on_resize(self, event: Resize) -> None:
        self.repaint()  # what fits changed

    def render(self) -> Group | Text:
        return self._content
