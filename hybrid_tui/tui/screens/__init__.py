"""Screens of the console (room: tui): task detail, attention list, help, confirm, scale."""

from .attention import AttentionScreen
from .confirm import ConfirmScreen
from .detail import TaskDetailScreen
from .help import HelpScreen
from .scale import ScaleScreen

__all__ = ["AttentionScreen", "ConfirmScreen", "HelpScreen", "ScaleScreen", "TaskDetailScreen"]
