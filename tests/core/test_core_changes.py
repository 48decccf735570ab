"""The change records are a closed set: ``Change`` and ``CHANGE_TYPES`` name every record
class, and every record the scheduler emits is one of them (checked in every core test by
``emitted_changes`` in conftest.py; here, a scenario that emits each kind)."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import hybrid_tui.core.changes as change_module
from hybrid_tui.core import CHANGE_TYPES, Change, SavedTask, Scheduler
from hybrid_tui.spec.models import PoliciesSection

from .helpers import CALLS_RETURNING_CHANGES, sched, task


def test_change_types_are_every_record_class_of_the_changes_module():
    record_classes = {cls for _, cls in inspect.getmembers(change_module, inspect.isclass)
                      if cls.__module__ == change_module.__name__ and dataclasses.is_dataclass(cls)}
    assert set(CHANGE_TYPES) == record_classes
    assert len(CHANGE_TYPES) == len(record_classes)
    assert CHANGE_TYPES == typing.get_args(Change)


def test_the_checked_calls_are_every_scheduler_call_returning_changes():
    def returns_changes(name: str, member: object) -> bool:
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, classmethod)):
            return False
        return "list[Change]" in str(inspect.signature(getattr(Scheduler, name)).return_annotation)

    returning = {name for name, member in vars(Scheduler).items() if returns_changes(name, member)}
    assert returning == set(CALLS_RETURNING_CHANGES)


def test_a_scenario_emits_every_kind_of_change(emitted_changes):
    emitted_changes.clear()
    policies = PoliciesSection(breaker_threshold=1, failure_rate_pause=1.0)
    s = sched([task("a", files=("x.py",)), task("b", "a"), task("c", "b"), task("d")], agents=2, policies=policies)
    s.tick(0)  # PoolTarget
    s.dispatch(0)  # TaskTransition, AgentChanged, LockAcquired
    s.succeed("a", 1, 0.1)  # LockReleased
    s.dispatch(1)
    s.fail("d", "network_error", 2)  # BreakerChanged, Alert
    s.cancel_dependents("a", 3)  # CancelRunning
    s.pause("operator", 4)  # PauseChanged
    s.remove_agent("L3.1", 5)
    held = sched([task("f", files=("y.py",)), task("g", files=("y.py",))], agents=2)
    held.dispatch(6)  # TaskWaiting: g's file is held by f
    Scheduler.restore([task("e")], {"e": SavedTask("running", attempts=1)}, now=6)
    assert {type(record) for record in emitted_changes} == set(CHANGE_TYPES)
    assert all(isinstance(record, CHANGE_TYPES) for record in emitted_changes)
