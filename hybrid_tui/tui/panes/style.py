"""Shared rendering helpers for panes (room: tui): theme colours for states, text bars.

Data from the store is always wrapped in ``rich.text.Text`` after ``inert()``; it is never
parsed as markup.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.color import Color, ColorParseError
from textual.widgets import Static

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


@lru_cache(maxsize=256)
def _rich_color(value: str) -> RichColor | None:
    """A theme colour as rich understands it. Textual's names ("ansi_green", "#rrggbbaa")
    are not all rich's: parse with Textual's parser, then convert."""
    try:
        return Color.parse(value).rich_color
    except (ColorParseError, ValueError):
        return None


def theme_color(app: App, role: str) -> RichColor | None:
    theme = app.current_theme
    return _rich_color(getattr(theme, role, None) or theme.primary)


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


def show_text(widget: Static, text: Text) -> bool:
    """``widget.update(text)`` unless it already shows that text (same characters and styles).

    Static.update re-lays out the whole screen (``refresh(layout=True)``): one pane updated
    with the text it had made every busy tick a full-screen layout and repaint (the tick +
    repaint budget, README Performance). Returns True when it updated."""
    shown = widget.content
    if isinstance(shown, Text) and shown == text and shown.style == text.style:
        return False
    widget.update(text)
    return True


MIN_ID = 6  # the narrowest an id column gets


def shorten_id(task_id: str, width: int) -> str:
    """``task_id`` in ``width`` columns: whole when it fits, else its head and tail around "…"
    (the tail tells ``perf-agent-3`` from ``perf-agent-4``, where a cut end does not)."""
    if len(task_id) <= width:
        return task_id
    tail = (width - 1) // 2
    head = width - 1 - tail
    return task_id[:head] + "…" + task_id[len(task_id) - tail:]


def id_width(task_ids: Iterable[str], cap: int) -> int:
    """The narrowest width up to the longest id (at most ``cap`` unless the ids need more)
    at which :func:`shorten_id` keeps every id distinct."""
    ids = list(task_ids)
    longest = max((len(i) for i in ids), default=MIN_ID)
    width = max(min(longest, cap), MIN_ID)
    while width < longest and len({shorten_id(i, width) for i in ids}) < len(ids):
        width += 1
    return width
