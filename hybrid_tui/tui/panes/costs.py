"""Cost burn pane (room: tui): spend vs mission and retry budgets, the alert ladder, spend by
model, a burn chart and the projected total."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from hybrid_tui.tui.data import CostSummary, inert
from hybrid_tui.tui.panes.style import bar, show_text, theme_color


class CostBurn(Vertical):
    DEFAULT_CSS = """
    CostBurn { border: round $primary 60%; height: auto; padding: 0 1; }
    CostBurn #cost-text { height: auto; }
    CostBurn Sparkline { height: 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.summary = CostSummary()
        self.border_title = "Cost"

    def compose(self) -> ComposeResult:
        yield Static("", id="cost-text")
        yield Sparkline([0.0], summary_function=max, id="burn-spark")

    def show(self, summary: CostSummary | None) -> None:
        if summary is not None:
            self.summary = summary
        self.repaint()

    def repaint(self) -> None:
        s = self.summary
        app = self.app
        text = Text()
        level = s.alert_level(s.fraction)
        text.append("spend ")
        text.append_text(bar(app, s.fraction, 12, warn=0.5, danger=0.9))
        text.append(f" ${s.spent_usd:.2f}/${s.mission_budget_usd:.2f} {s.fraction * 100:3.0f}%")
        if level is not None:
            role = "error" if level >= 0.9 else "warning"
            text.append(f" ▲{level * 100:.0f}%", style=Style(color=theme_color(app, role), bold=True))
        text.append("\nretry ")
        text.append_text(bar(app, s.retry_fraction, 12, warn=0.5, danger=0.9))
        text.append(f" ${s.retry_spent_usd:.2f}/${s.retry_budget_usd:.2f} {s.retry_fraction * 100:3.0f}%")
        retry_level = s.alert_level(s.retry_fraction)
        if retry_level is not None:
            role = "error" if retry_level >= 0.9 else "warning"
            text.append(f" ▲{retry_level * 100:.0f}%", style=Style(color=theme_color(app, role), bold=True))
        if s.budget_stopped:  # dispatching stopped for lack of money: say so, and what to do
            text.append(f"\nbudget exhausted: {s.budget_stopped} task(s) stopped · $ raises it, R retries them",
                        style=Style(color=theme_color(app, "error"), bold=True))
        over = s.mission_budget_usd and s.projected_usd > s.mission_budget_usd
        text.append(f"\nprojected ${s.projected_usd:.2f}", style=Style(color=theme_color(app, "error"), bold=True) if over else "")
        text.append(f" ({s.tasks_done}/{s.tasks_total} tasks done)")
        models = list(s.by_model.items())[:3]
        if models:
            text.append("\n" + " · ".join(f"{inert(name)} ${cost:.2f}" for name, cost in models), style=Style(dim=True))
        show_text(self.query_one("#cost-text", Static), text)
        self.query_one(Sparkline).data = s.burn or [0.0]
        self.border_title = f"Cost ${s.spent_usd:.2f}"
