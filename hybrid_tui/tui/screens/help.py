"""Help screen (room: tui): every key of the console, from the app's own bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

EXTRA_KEYS = [
    ("up/down, pgup/pgdn", "move in the task table"),
    ("=", "type an exact pool size"),
    ("a", "tasks that need attention"),
    ("c / b", "cancel the selected task's dependents / roll back its commit (both ask first)"),
    ("+ / -", "grow / shrink the agent pool by one"),
    ("t", "next theme"),
    ("ctrl+p", "command palette: every action by name"),
    ("escape", "close a screen or dialog"),
]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: list[tuple[str, str]]):
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in [*self.keys, *EXTRA_KEYS]:
            table.add_row(Text(key), Text(description))
        with VerticalScroll():
            yield Static(Text("hybrid-tui keys", style="bold underline"))
            yield Static(table)
            yield Static(Text("Every action goes to the coordinator through the control table.", style="dim"))
