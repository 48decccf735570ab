"""Screens of the console (room: tui): task detail, attention list, help, confirm, scale."""

from hybrid_tui.tui.screens.attention import AttentionScreen
from hybrid_tui.tui.screens.confirm import ConfirmScreen
from hybrid_tui.tui.screens.detail import TaskDetailScreen
from hybrid_tui.tui.screens.help import HelpScreen
from hybrid_tui.tui.screens.scale import ScaleScreen

__all__ = ["AttentionScreen", "ConfirmScreen", "HelpScreen", "ScaleScreen", "TaskDetailScreen"]
