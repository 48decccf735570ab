"""Shared rendering helpers for panes (room: tui): theme colours for states, text bars.

Data from the store is always wrapped in ``rich.text.Text`` after ``inert()``; it is never
parsed as markup.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import App

from hybrid_tui.tui.data import inert

SPARK_CHARS = "▁▂▃▄▅▆▇█"

_STATUS_ROLE = {
    "running": "accent",
    "validating": "accent",
    "integrating": "accent",
    "busy": "accent",
    "done": "success",
    "applied": "success",
    "finished": "success",
    "failed": "error",
    "blocked": "error",
    "error": "error",
    "rejected": "error",
    "stopped": "warning",
    "retry_wait": "warning",
    "awaiting_approval": "warning",
    "paused": "warning",
    "warning": "warning",
    "draining": "warning",
    "rolled_back": "secondary",
    "cancelled": "secondary",
}


def theme_color(app: App, role: str) -> str | None:
    theme = app.current_theme
    return getattr(theme, role, None) or theme.primary


def status_text(app: App, status: str, label: str | None = None) -> Text:
    """``status`` (or ``label`` in its place) in the colour of its role."""
    role = _STATUS_ROLE.get(status)
    shown = inert(label or status)
    if role is None:
        return Text(shown)
    bold = role in ("error", "warning")
    return Text(shown, style=Style(color=theme_color(app, role), bold=bold))


def spark(values: list[float], width: int | None = None, maximum: float | None = None) -> str:
    """A one-line sparkline of ``values`` (0..maximum) in block characters."""
    if width is not None:
        values = values[-width:]
    if not values:
        return ""
    top = maximum if maximum is not None else (max(values) or 1.0)
    out = []
    for v in values:
        if v <= 0:
            out.append(" " if maximum is not None else SPARK_CHARS[0])
            continue
        index = int(min(v / top, 1.0) * (len(SPARK_CHARS) - 1) + 0.5)
        out.append(SPARK_CHARS[max(index, 0)])
    return "".join(out)


def bar(app: App, fraction: float, width: int, *, warn: float = 0.75, danger: float = 0.9) -> Text:
    """A gauge bar coloured by how full it is."""
    fraction = max(0.0, fraction)
    filled = int(round(min(fraction, 1.0) * width))
    role = "error" if fraction >= danger else "warning" if fraction >= warn else "success"
    text = Text()
    text.append("█" * filled, style=Style(color=theme_color(app, role)))
    text.append("░" * (width - filled), style=Style(dim=True))
    return text


COMPACT_WIDTH, COMPACT_HEIGHT = 140, 32


def is_compact(width: int, height: int) -> bool:
    """Below this size the dashboard stacks: tasks, a summary line, a short event log."""
    return width < COMPACT_WIDTH or height < COMPACT_HEIGHT
