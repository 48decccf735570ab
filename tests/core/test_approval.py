"""The approval gate (review §2.2.4, §8.3): with ``[policies] approve``, a task the policy
names (by priority class, id or domain) waits as ``awaiting_approval`` once its
dependencies are done, instead of becoming ready; the operator approves or rejects it."""

from __future__ import annotations

from hybrid_tui.core import SavedTask, Scheduler, TaskStatus
from hybrid_tui.spec.models import PoliciesSection

from .helpers import sched, task, transitions

S = TaskStatus
GATE_CRITICAL = PoliciesSection(approve=["CRITICAL"])


def test_a_critical_task_waits_for_approval_while_the_rest_are_dispatched():
    s = sched([task("crit", priority="CRITICAL"), task("plain"), task("after", "crit")], agents=2,
              policies=GATE_CRITICAL)
    assert s.status("crit") is S.AWAITING_APPROVAL and s.status("plain") is S.READY
    dispatches, _ = s.dispatch(0.0)
    assert [d.task_id for d in dispatches] == ["plain"]  # an agent stays idle rather than run it
    assert not s.is_finished()

    changes = s.approve("crit", 1.0)
    assert transitions(changes) == [("crit", "awaiting_approval", "ready")]
    dispatches, _ = s.dispatch(1.0)
    assert [d.task_id for d in dispatches] == ["crit"]
    assert s.status("after") is S.PENDING


def test_a_gated_task_is_held_only_when_its_dependencies_are_done():
    s = sched([task("first"), task("crit", "first", priority="CRITICAL")], policies=GATE_CRITICAL)
    assert s.status("crit") is S.PENDING
    (d,), _ = s.dispatch(0.0)
    changes = s.succeed(d.task_id, 1.0)
    assert ("crit", "pending", "awaiting_approval") in transitions(changes)


def test_the_policy_names_priority_classes_task_ids_and_domains():
    s = sched([task("by-id"), task("by-domain", domain="payments"), task("by-class", priority="HIGH"), task("free")],
              policies=PoliciesSection(approve=["by-id", "payments", "HIGH"]))
    assert {t: s.status(t).value for t in ("by-id", "by-domain", "by-class", "free")} == {
        "by-id": "awaiting_approval", "by-domain": "awaiting_approval", "by-class": "awaiting_approval",
        "free": "ready"}


def test_reject_fails_the_task_with_the_reason_and_blocks_its_dependents():
    s = sched([task("crit", priority="CRITICAL"), task("after", "crit")], policies=GATE_CRITICAL)
    changes = s.reject("crit", "touches billing", 1.0)
    assert transitions(changes) == [("crit", "awaiting_approval", "failed"), ("after", "pending", "blocked")]
    assert changes[0].reason == "rejected by operator: touches billing"
    assert s.is_finished()


def test_approve_and_reject_do_nothing_to_a_task_not_awaiting_approval():
    s = sched([task("crit", priority="CRITICAL"), task("plain")], policies=GATE_CRITICAL)
    assert s.approve("plain", 0.0) == [] and s.reject("plain", "no", 0.0) == []
    s.approve("crit", 0.0)
    assert s.approve("crit", 0.0) == [] and s.status("crit") is S.READY


def test_an_approved_task_is_not_asked_again_when_it_is_retried_after_a_failure():
    s = sched([task("crit", priority="CRITICAL")], policies=PoliciesSection(approve=["CRITICAL"], failure_rate_pause=1.0))
    s.approve("crit", 0.0)
    s.dispatch(0.0)
    s.fail("crit", "validation_failed", 1.0)
    s.tick(10_000.0)  # past any backoff
    assert s.status("crit") is S.READY  # its retry runs: the operator approved the task, not one attempt


def test_restore_keeps_a_task_awaiting_approval_and_an_approved_one_ready():
    tasks = [task("crit", priority="CRITICAL"), task("crit2", priority="CRITICAL")]
    s, changes = Scheduler.restore(tasks, {"crit": SavedTask("awaiting_approval"), "crit2": SavedTask("ready")},
                                   now=0.0, policies=GATE_CRITICAL)
    assert changes == []
    assert s.status("crit") is S.AWAITING_APPROVAL and s.status("crit2") is S.READY


def test_without_the_policy_nothing_waits():
    s = sched([task("crit", priority="CRITICAL")])
    assert s.status("crit") is S.READY
