"""Room: core. Change records: what a core call decided, for the shell to persist in order.

Every mutating :class:`~hybrid_tui.core.scheduler.Scheduler` call returns ``list[Change]``.
The shell (runtime or simulator) applies them in order (store rows, events, agent
cancellation) and may show them. They are small frozen values.

The set is closed: :data:`Change` is the union of every record class and
:data:`CHANGE_TYPES` the same classes as a tuple. The runtime stores each of them (an
exhaustive ``match`` in ``runtime/task_state.py``) and raises on anything else, so adding
a record class here means adding its case there; the ``estimate`` simulator reads only the
records that change its virtual run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias, get_args

from hybrid_tui.core.states import TaskStatus


@dataclass(frozen=True, slots=True)
class TaskTransition:
    """``task_id`` moved from ``old`` to ``new``. ``retry_at`` is set for ``retry_wait``."""

    task_id: str
    old: TaskStatus
    new: TaskStatus
    reason: str = ""
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class LockAcquired:
    path: str
    task_id: str
    acquired_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LockReleased:
    path: str
    task_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """Agent state is one of ``idle``, ``busy``, ``draining`` (busy, removed when its task
    ends) or ``removed``. ``task_id`` is the task it is working on, if any."""

    agent_id: str
    state: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the operator should see.

    ``kind``: ``budget``, ``retry_budget``, ``budget_exhausted``, ``retry_budget_exhausted``,
    ``failure_rate``, ``breaker_open``, ``queue_backup``, ``lock_expired``, ``attention``
    (a task failed terminally). ``level``: ``info``, ``warning`` or ``critical``.
    """

    kind: str
    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class CancelRunning:
    """The shell must stop this attempt now. The core has already moved the task on and
    released its locks and agent; report the stopped attempt's cost with
    ``Scheduler.settle_cancelled(task_id, attempt, cost_usd, now)``, not with fail/succeed."""

    task_id: str
    agent_id: str | None
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class PoolTarget:
    """The L3 pool should have ``size`` agents (autoscaling or an operator's ``scale``)."""

    size: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PauseChanged:
    paused: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """Circuit breaker of one agent backend: ``closed``, ``open`` or ``half_open``."""

    backend: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TaskWaiting:
    """A ready task was held back by ``kind`` (``lock``: a declared file ``holder`` holds).
    Emitted once per hold (when dispatch first finds it), for the event log."""

    task_id: str
    kind: str
    message: str
    holder: str | None = None


#: Every record a core call returns: the closed set a shell must handle.
Change: TypeAlias = (
    TaskTransition
    | LockAcquired
    | LockReleased
    | AgentChanged
    | Alert
    | CancelRunning
    | PoolTarget
    | PauseChanged
    | BreakerChanged
    | TaskWaiting
)

#: The classes of :data:`Change`, for ``isinstance`` checks.
CHANGE_TYPES: tuple[type, ...] = get_args(Change)
