"""Screens of the console (room: tui): task detail, attention list, help, confirm, scale,
budget, dependency tree, log pager."""

from hybrid_tui.tui.screens.attention import AttentionScreen
from hybrid_tui.tui.screens.budget import BudgetScreen
from hybrid_tui.tui.screens.confirm import ConfirmScreen
from hybrid_tui.tui.screens.detail import TaskDetailScreen
from hybrid_tui.tui.screens.help import HelpScreen
from hybrid_tui.tui.screens.log import LogScreen
from hybrid_tui.tui.screens.scale import ScaleScreen
from hybrid_tui.tui.screens.tree import DependencyScreen

__all__ = ["AttentionScreen", "BudgetScreen", "ConfirmScreen", "DependencyScreen", "HelpScreen", "LogScreen",
           "ScaleScreen", "TaskDetailScreen"]
