"""Room: core. The task lifecycle as an explicit state machine. Pure: no I/O, no clock."""

from __future__ import annotations

from enum import Enum

from hybrid_tui.vocabulary import DEAD_STATUSES, IN_FLIGHT_STATUSES, QUEUED_STATUSES, TERMINAL_STATUSES, TASK_STATUSES


class TaskStatus(str, Enum):
    """Lifecycle of one task (DESIGN.md "Task lifecycle").

    The string values are what the store persists, so ``TaskStatus("done")`` round-trips.
    """

    PENDING = "pending"  # some dependency is not done yet
    AWAITING_APPROVAL = "awaiting_approval"  # ready, but ``[policies] approve`` holds it for an operator
    READY = "ready"  # every dependency done, waiting for an agent
    RUNNING = "running"  # an agent is implementing it
    VALIDATING = "validating"  # validation commands are running
    INTEGRATING = "integrating"  # in the integration queue
    DONE = "done"
    RETRY_WAIT = "retry_wait"  # failed, waiting for its backoff deadline
    FAILED = "failed"  # retries spent or not retryable: needs attention
    BLOCKED = "blocked"  # a dependency failed terminally
    CANCELLED = "cancelled"  # cancelled by an operator or by a failed dependency
    ROLLED_BACK = "rolled_back"  # done, then reverted by an operator

    def __str__(self) -> str:  # shows "running", not "TaskStatus.RUNNING"
        return self.value


S = TaskStatus
assert {s.value for s in TaskStatus} == set(TASK_STATUSES), "core and the shared vocabulary name the same statuses"

#: An agent is working on the task (it holds its file locks and an agent).
ACTIVE: frozenset[TaskStatus] = frozenset(map(TaskStatus, IN_FLIGHT_STATUSES))
#: Waiting to run (not started, or between attempts).
QUEUED: frozenset[TaskStatus] = frozenset(map(TaskStatus, QUEUED_STATUSES))
#: Nothing more happens without an operator.
TERMINAL: frozenset[TaskStatus] = frozenset(map(TaskStatus, TERMINAL_STATUSES))
#: A dependency in one of these states can never become done without an operator:
#: its queued dependents are blocked.
DEAD: frozenset[TaskStatus] = frozenset(map(TaskStatus, DEAD_STATUSES))

#: Every legal transition. ``running -> done`` and ``validating -> done`` exist for shells
#: that do not model the validating/integrating phases (the simulator, benchmarks).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.READY, S.AWAITING_APPROVAL, S.BLOCKED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.READY, S.PENDING, S.BLOCKED, S.CANCELLED, S.FAILED}),
    S.READY: frozenset({S.RUNNING, S.PENDING, S.BLOCKED, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.VALIDATING, S.INTEGRATING, S.DONE, S.RETRY_WAIT, S.FAILED, S.CANCELLED}),
    S.VALIDATING: frozenset({S.INTEGRATING, S.DONE, S.RETRY_WAIT, S.FAILED, S.CANCELLED}),
    S.INTEGRATING: frozenset({S.DONE, S.RETRY_WAIT, S.FAILED, S.CANCELLED}),
    S.RETRY_WAIT: frozenset({S.READY, S.PENDING, S.FAILED, S.BLOCKED, S.CANCELLED}),
    S.DONE: frozenset({S.ROLLED_BACK}),
    S.FAILED: frozenset({S.READY, S.PENDING}),
    S.BLOCKED: frozenset({S.PENDING, S.READY, S.AWAITING_APPROVAL, S.CANCELLED}),
    S.CANCELLED: frozenset({S.READY, S.PENDING}),
    S.ROLLED_BACK: frozenset({S.READY, S.PENDING}),
}


class CoreError(Exception):
    """Base of every error the scheduling core raises."""


class IllegalTransition(CoreError):
    """A task was asked to move along an edge that is not in :data:`TRANSITIONS`."""

    def __init__(self, task_id: str, old: TaskStatus, new: TaskStatus, why: str = "") -> None:
        self.task_id, self.old, self.new = task_id, old, new
        extra = f" ({why})" if why else ""
        super().__init__(f"task {task_id}: illegal transition {old.value} -> {new.value}{extra}")


def check_transition(task_id: str, old: TaskStatus, new: TaskStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is a legal edge."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(task_id, old, new)
