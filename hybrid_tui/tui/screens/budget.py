"""Budget dialog (room: tui): type a new mission budget in dollars; sent as the ``budget``
control (the same durable command as ``hybrid-tui budget``), which the coordinator applies."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class BudgetScreen(ModalScreen[float | None]):
    DEFAULT_CSS = """
    BudgetScreen { align: center middle; }
    BudgetScreen > Vertical { width: 60; max-width: 95%; height: auto; border: thick $primary;
        background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current_usd: float, spent_usd: float):
        super().__init__()
        self.current_usd, self.spent_usd = current_usd, spent_usd

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Mission budget in $ (now ${self.current_usd:.2f}, spent ${self.spent_usd:.2f}); "
                         "enter to apply. Tasks the old budget refused stay failed: R retries them.")
            yield Input(f"{self.current_usd:.2f}", type="number", id="budget-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify("budget must be a number of dollars", severity="error")
            return
        if not 0 < value < float("inf"):
            self.notify("budget must be a positive number of dollars", severity="error")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
