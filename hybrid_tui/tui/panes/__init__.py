"""Dashboard panes of the console, one module each (room: tui; read-only views)."""

from .agents import AgentPool
from .costs import CostBurn
from .events import EventLog
from .header import RunHeader
from .locks import FileLocks
from .resources import ResourceGauges
from .tasks import TaskQueue

__all__ = ["AgentPool", "CostBurn", "EventLog", "FileLocks", "ResourceGauges", "RunHeader", "TaskQueue"]
