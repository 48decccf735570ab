"""Dashboard panes of the console, one module each (room: tui; read-only views)."""

from hybrid_tui.tui.panes.agents import AgentPool
from hybrid_tui.tui.panes.costs import CostBurn
from hybrid_tui.tui.panes.events import EventLog
from hybrid_tui.tui.panes.header import RunHeader
from hybrid_tui.tui.panes.locks import FileLocks
from hybrid_tui.tui.panes.resources import ResourceGauges
from hybrid_tui.tui.panes.tasks import TaskQueue

__all__ = ["AgentPool", "CostBurn", "EventLog", "FileLocks", "ResourceGauges", "RunHeader", "TaskQueue"]
