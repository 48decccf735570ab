"""Scale dialog (room: tui): type an exact pool size; the coordinator validates it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ScaleScreen(ModalScreen[int | None]):
    DEFAULT_CSS = """
    ScaleScreen { align: center middle; }
    ScaleScreen > Vertical { width: 50; height: auto; border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: int, low: int, high: int):
        super().__init__()
        self.current, self.low, self.high = current, low, high

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Pool size (now {self.current}, min {self.low}, max {self.high}); enter to apply")
            yield Input(str(self.current), type="integer", id="scale-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = int(event.value)
        except ValueError:
            self.notify("pool size must be a whole number", severity="error")
            return
        if not self.low <= value <= self.high:
            self.notify(f"pool size must be between {self.low} and {self.high}", severity="error")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
