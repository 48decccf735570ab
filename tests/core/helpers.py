"""Small builders shared by the core tests."""

from __future__ import annotations

import random

from hybrid_tui.core import Change, Scheduler, TaskInfo, TaskTransition
from hybrid_tui.spec.models import PoliciesSection, PriorityWeights


#: The Scheduler calls that return change records: a list, or a tuple ending with one
#: (conftest.py checks every record they return).
CALLS_RETURNING_CHANGES = (
    "add_tasks", "restore", "add_agent", "remove_agent", "dispatch", "advance", "succeed", "fail",
    "settle_cancelled", "request_lock", "tick", "pause", "resume", "retry", "cancel", "cancel_dependents",
    "scale", "set_budget", "mark_rolled_back", "approve", "reject",
)

#: The review's additive priority formula (``[policies.priority] mode = "review"``), for the
#: tests that pin its scores.
REVIEW = PoliciesSection(priority=PriorityWeights(mode="review"))

#: Default policies without the failure-rate auto-pause (for tests that fail on purpose).
NO_PAUSE = PoliciesSection(failure_rate_pause=1.0)


def task(tid: str, *deps: str, files: tuple[str, ...] = (), priority: str = "MEDIUM", minutes: float = 10,
         cost: float = 0.0, domain: str = "general") -> TaskInfo:
    return TaskInfo(tid, priority=priority, domain=domain, dependencies=deps, files=files,
                    estimated_duration_minutes=minutes, expected_cost_usd=cost)


def sched(tasks, agents=1, backend="replay", seed=0, **kwargs) -> Scheduler:
    kwargs.setdefault("policies", PoliciesSection())
    s = Scheduler(tasks, rng=random.Random(seed), **kwargs)
    for i in range(agents):
        s.add_agent(f"L3.{i + 1}", 0.0, backend=backend)
    return s


def transitions(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.task_id, c.old.value, c.new.value) for c in changes if isinstance(c, TaskTransition)]


def of(kind, changes):
    return [c for c in changes if isinstance(c, kind)]
