"""Room: core. Immutable task descriptions and the values the scheduler hands out. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hybrid_tui.core.states import TaskStatus

if TYPE_CHECKING:
    from hybrid_tui.spec.models import SisTask


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What the core needs to know about one task (a projection of an SIS task).

    ``files`` are the declared (normalized, repository-relative) paths, locked at dispatch.
    ``expected_cost_usd`` is computed by the runtime from pricing and the token estimate.
    """

    task_id: str
    priority: str = "MEDIUM"  # CRITICAL | HIGH | MEDIUM | LOW
    domain: str = "general"
    dependencies: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    estimated_duration_minutes: float = 10.0
    expected_cost_usd: float = 0.0
    has_security_checks: bool = False

    @classmethod
    def from_sis(cls, sis_task: SisTask, expected_cost_usd: float = 0.0) -> TaskInfo:
        return cls(
            task_id=sis_task.task_id,
            priority=getattr(sis_task.priority, "value", sis_task.priority),
            domain=sis_task.domain,
            dependencies=tuple(sis_task.dependencies),
            files=tuple(sis_task.declared_files),
            estimated_duration_minutes=float(sis_task.estimated_duration_minutes),
            expected_cost_usd=float(expected_cost_usd),
            has_security_checks=bool(sis_task.validation.security_checks),
        )


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start ``attempt`` (1-based, counted over the task's whole life) of ``task_id`` on
    ``agent_id``. ``previous_failure`` is the failure type of the attempt before, if any;
    ``feedback`` carries its message when the retry rule's action is ``with_feedback``."""

    task_id: str
    agent_id: str
    attempt: int
    backend: str
    previous_failure: str | None = None
    feedback: str | None = None
    # [policies.batch]: the task ids of the batch this attempt belongs to, its leader first
    # (every one dispatched in this call, on the same agent); () for an attempt of its own.
    batch: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SavedTask:
    """What the store remembers of a task, for :meth:`Scheduler.restore` after a crash."""

    status: TaskStatus | str
    attempts: int = 0  # attempts started so far
    failures: dict[str, int] = field(default_factory=dict)  # failure type -> count
    retry_at: float | None = None
    last_agent: str | None = None
    last_failure: str | None = None
    last_message: str = ""


@dataclass(frozen=True, slots=True)
class TaskView:
    """Read-only snapshot of one task's scheduling state (for views and tests)."""

    info: TaskInfo
    status: TaskStatus
    attempts: int
    agent_id: str | None
    retry_at: float | None
    failures: dict[str, int]
    last_failure: str | None
    reason: str
    estimate_minutes: float = 0.0  # its estimate, raised when an attempt ran longer
    path_minutes: float = 0.0  # its remaining critical path (estimate + longest dependent chain)
    started_at: float | None = None  # the running attempt's start
    actual_seconds: float = 0.0  # summed over its finished attempts


@dataclass(frozen=True, slots=True)
class WaitReason:
    """Why a queued task is not running. ``kind``: ``dependencies``, ``backoff`` (until
    ``until``), ``lock`` (``holder`` holds a declared file), ``budget``, ``paused``,
    ``breaker`` or ``agent`` (waiting for a free agent)."""

    kind: str
    message: str
    holder: str | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    backend: str
    state: str  # idle | busy | draining
    task_id: str | None
    load: int  # tasks assigned so far
    recent_files: frozenset[str]
    recent_domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LockView:
    path: str
    task_id: str
    acquired_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Spend:
    total_usd: float
    retry_usd: float
    mission_budget_usd: float
    retry_budget_usd: float
    reserved_usd: float  # held for attempts in flight
