"""Room: core. The scheduling core: pure decisions (no I/O, no clock, no threads).

Driven by the runtime (anyio, wall clock) and the ``estimate`` simulator (virtual clock).
See :mod:`hybrid_tui.core.scheduler` for the driving loop.
"""

from hybrid_tui.core.changes import (
    CHANGE_TYPES,
    AgentChanged,
    Alert,
    BreakerChanged,
    CancelRunning,
    Change,
    LockAcquired,
    LockReleased,
    PauseChanged,
    PoolTarget,
    TaskTransition,
    TaskWaiting,
)
from hybrid_tui.core.policies import critical_path_score, jittered_backoff, priority_score, retry_delay, scaling_target
from hybrid_tui.core.scheduler import BACKEND_FAILURES, DagError, Scheduler, UnknownTask
from hybrid_tui.core.states import (
    ACTIVE,
    DEAD,
    QUEUED,
    TERMINAL,
    TRANSITIONS,
    CoreError,
    IllegalTransition,
    TaskStatus,
    check_transition,
)
from hybrid_tui.core.tasks import AgentView, Dispatch, LockView, SavedTask, Spend, TaskInfo, TaskView, WaitReason
from hybrid_tui.core.tiering import select_model

__all__ = [
    "ACTIVE", "BACKEND_FAILURES", "CHANGE_TYPES", "DEAD", "QUEUED", "TERMINAL", "TRANSITIONS",
    "AgentChanged", "AgentView", "Alert", "BreakerChanged", "CancelRunning", "Change", "CoreError",
    "DagError", "Dispatch", "IllegalTransition", "LockAcquired", "LockReleased", "LockView",
    "PauseChanged", "PoolTarget", "SavedTask", "Scheduler", "Spend", "TaskInfo", "TaskStatus",
    "TaskTransition", "TaskView", "TaskWaiting", "UnknownTask", "WaitReason", "check_transition",
    "critical_path_score", "jittered_backoff", "priority_score", "retry_delay", "scaling_target", "select_model",
]
