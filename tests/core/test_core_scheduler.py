"""Scheduler behaviour: scoring, assignment, locks, retries, breaker, budgets, scaling,
propagation, operator operations, crash recovery."""

from __future__ import annotations

import random

import pytest

from hybrid_tui.core import (
    AgentChanged,
    Alert,
    BreakerChanged,
    CancelRunning,
    CoreError,
    DagError,
    IllegalTransition,
    LockAcquired,
    LockReleased,
    PauseChanged,
    PoolTarget,
    SavedTask,
    TaskTransition,
    Scheduler,
    TaskStatus,
)
from hybrid_tui.spec.models import PoliciesSection, PriorityWeights, RetryRule

from .helpers import NO_PAUSE, REVIEW, of, sched, task, transitions

S = TaskStatus


def run_one(s: Scheduler, now: float = 0.0):
    dispatches, _ = s.dispatch(now, limit=1)
    assert len(dispatches) == 1, dispatches
    return dispatches[0]


# ---------------------------------------------------------------- the review's example


def test_review_worked_example_scores_and_order():
    """Review 4.1: A 140, D 135, C 45, B 40 -> runs A, D, C, B.

    The review computed its example with a duration penalty of min(minutes, 30), so this
    mission overrides ``duration_divisor = 1`` (DESIGN.md's default keeps ``/ 10``), in the
    review's mode (``[policies.priority] mode = "review"``)."""
    policies = PoliciesSection(priority=PriorityWeights(mode="review", duration_divisor=1))
    tasks = [
        task("X1", priority="LOW", minutes=0), task("X2", priority="LOW", minutes=0),
        # L holds C's file: CRITICAL, no deps, 0 minutes = 150, so it is dispatched first.
        task("L", priority="CRITICAL", minutes=0, files=("c.py",)),
        task("A", priority="CRITICAL", minutes=10, files=("a.py",)),
        task("B", "X1", "X2", priority="HIGH", minutes=30, files=("b.py",)),
        task("C", priority="MEDIUM", minutes=5, files=("c.py",)),
        task("D", priority="HIGH", minutes=15, files=("d.py",)),
        *[task(f"D{i}", "D", priority="LOW", minutes=60) for i in (1, 2, 3)],
    ]
    s, _ = Scheduler.restore(tasks, {"X1": SavedTask("done"), "X2": SavedTask("done")}, now=0.0,
                             policies=policies, rng=random.Random(0))
    s.add_agent("L3.1", 0.0)
    assert run_one(s).task_id == "L"
    assert [(t, s.score(t)) for t in s.ready_ids()] == [("A", 140), ("D", 135), ("C", 45), ("B", 40)]

    s.add_agent("L3.2", 0.0)
    order = []
    for now in (1.0, 2.0):
        d = run_one(s, now)
        order.append(d.task_id)
        s.succeed(d.task_id, now)
    s.succeed("L", 3.0)  # frees c.py: C loses its -40
    assert s.score("C") == 85
    for now in (4.0, 5.0):
        d = run_one(s, now)
        order.append(d.task_id)
        s.succeed(d.task_id, now)
    assert order == ["A", "D", "C", "B"]


def test_default_divisor_follows_the_formula():
    s = sched([task("A", priority="CRITICAL", minutes=10), task("D", priority="HIGH", minutes=15),
               *[task(f"D{i}", "D") for i in range(3)]], agents=0, policies=REVIEW)
    assert s.score("A") == 100 + 50 - 1
    assert s.score("D") == 70 + 50 + 30 - 1.5


def test_ready_ties_break_by_task_id():
    s = sched([task(t) for t in ("b", "c", "a")], agents=3)
    assert s.ready_ids() == ["a", "b", "c"]
    assert [d.task_id for d in s.dispatch(0)[0]] == ["a", "b", "c"]


def test_dependent_added_later_rescores_ready_task():
    s = sched([task("a"), task("b")], agents=0, policies=REVIEW)
    assert s.ready_ids() == ["a", "b"]
    s.add_tasks([task("c", "b"), task("d", "b")])
    assert s.score("b") == s.score("a") + 20
    assert s.ready_ids() == ["b", "a"]
    assert s.status("c") is S.PENDING


# ---------------------------------------------------------------- DAG


def test_unknown_dependency_is_named():
    with pytest.raises(DagError, match="task 'b' depends on unknown task 'zz'"):
        sched([task("a"), task("b", "zz")])


def test_cycle_is_named():
    with pytest.raises(DagError, match=r"dependency cycle: a -> b -> c -> a \(each task depends on the next\)"):
        sched([task("a", "b"), task("b", "c"), task("c", "a"), task("d")])


def test_duplicate_and_self_dependency():
    with pytest.raises(DagError, match="duplicate task id 'a'"):
        sched([task("a"), task("a")])
    with pytest.raises(DagError, match="cycle: a -> a"):
        sched([task("a", "a")])


def test_finishing_a_task_readies_only_dependents_whose_deps_are_all_done():
    s = sched([task("a"), task("b"), task("c", "a", "b"), task("d", "a")], agents=2)
    s.dispatch(0)
    ch = s.succeed("a", 1)
    assert ("d", "pending", "ready") in transitions(ch)
    assert s.status("c") is S.PENDING
    ch = s.succeed("b", 2)
    assert ("c", "pending", "ready") in transitions(ch)
    assert set(s.transitive_dependents("a")) == {"c", "d"}


# ---------------------------------------------------------------- assignment


def test_assignment_prefers_file_context_then_domain_then_least_loaded():
    s = sched([task("t1", files=("api.py",), domain="api"), task("t2", files=("db.py",), domain="db"),
               task("t3", "t1", "t2", files=("api.py",), domain="db"),
               task("t4", "t3", files=("x.py",), domain="db"),
               task("t5", "t4", files=("y.py",), domain="ui")], agents=3)
    first = {d.task_id: d.agent_id for d in s.dispatch(0)[0]}
    assert first == {"t1": "L3.1", "t2": "L3.2"}
    s.succeed("t1", 1), s.succeed("t2", 1)
    assert run_one(s, 2).agent_id == "L3.1"  # t3 shares api.py with L3.1's t1 (though domain db = L3.2's)
    s.succeed("t3", 3)
    assert run_one(s, 4).agent_id == "L3.2"  # t4: no file overlap; domain db: L3.1 (load 2) or L3.2 (load 1)
    s.succeed("t4", 5)
    d = run_one(s, 6)  # t5: no overlap, no domain -> least loaded: L3.3 (0 tasks)
    assert d.agent_id == "L3.3"


def test_domain_match_breaks_ties_by_load_then_id():
    s = sched([task("a", domain="db"), task("b", domain="db"), task("c", "a", "b", domain="db"),
               task("d", "c", domain="ui")], agents=3)
    s.dispatch(0)
    s.succeed("a", 1), s.succeed("b", 1)
    assert run_one(s, 2).agent_id == "L3.1"  # L3.1 and L3.2 both know db, both load 1: id
    s.succeed("c", 3)
    assert run_one(s, 4).agent_id == "L3.3"  # ui: nobody; least loaded is L3.3


# ---------------------------------------------------------------- locks


def test_two_tasks_on_one_file_never_run_together():
    s = sched([task("a", files=("f.py", "g.py")), task("b", files=("g.py",))], agents=2, policies=REVIEW)
    d, ch = s.dispatch(0)
    assert [x.task_id for x in d] == ["a"]
    assert [(c.path, c.task_id) for c in of(LockAcquired, ch)] == [("f.py", "a"), ("g.py", "a")]
    assert s.score("b") == 40 + 50 - 1 - 40  # g.py is locked by a
    ch = s.succeed("a", 1)
    assert {c.path for c in of(LockReleased, ch)} == {"f.py", "g.py"}
    assert s.score("b") == 40 + 50 - 1
    assert [x.task_id for x in s.dispatch(1)[0]] == ["b"]


def test_locked_task_is_skipped_for_the_next_one():
    s = sched([task("a", files=("f",)), task("b", files=("f",)), task("c", priority="LOW")], agents=3)
    assert [x.task_id for x in s.dispatch(0)[0]] == ["a", "c"]
    assert s.ready_ids() == ["b"]


def test_request_lock_for_undeclared_file():
    s = sched([task("a", files=("a.py",)), task("b", files=("b.py",))], agents=2)
    s.dispatch(0)
    granted, ch = s.request_lock("a", "shared.py", 1)
    assert granted and of(LockAcquired, ch)[0].path == "shared.py"
    assert s.request_lock("a", "shared.py", 1)[0] is True  # already its own
    assert s.request_lock("b", "shared.py", 1) == (False, [])
    s.succeed("a", 2)
    assert [lk.path for lk in s.locks()] == ["b.py"]
    with pytest.raises(CoreError, match="task a is done"):
        s.request_lock("a", "x", 3)


def test_lock_lease_is_renewed_while_its_attempt_runs_past_the_ttl():
    # Issue 17: a lock is a lease renewed while its attempt lives (it used to expire at
    # lock_ttl_seconds, cancelling a long attempt as a `timeout` and blocking its dependents).
    s = sched([task("a", files=("f",)), task("b", files=("f",))], agents=2)
    s.dispatch(0)
    ttl = s.policies.lock_ttl_seconds
    assert s.next_deadline() == ttl
    assert s.tick(ttl - 1) == [PoolTarget(4, "queue depth 1")]
    ch = s.tick(ttl)
    assert of(LockAcquired, ch) == [LockAcquired("f", "a", 0, 2 * ttl)]  # renewed, stored again
    assert not of(Alert, ch) and not of(CancelRunning, ch)
    assert s.status("a") is S.RUNNING and s.task("a").failures == {}
    assert [lk.path for lk in s.locks()] == ["f"] and s.next_deadline() == 2 * ttl
    assert s.dispatch(ttl)[0] == []  # b still waits for f
    s.tick(2.5 * ttl)  # renewed again; the attempt ends when it ends, not when a lease runs out
    s.succeed("a", 2.5 * ttl)
    assert s.locks() == []
    assert [d.task_id for d in s.dispatch(2.5 * ttl)[0]] == ["b"]


def test_environment_error_fails_once_pauses_with_the_reason_and_spares_the_breaker():
    tasks = [task(name) for name in "abcdefg"]  # more failures than the breaker's threshold of 5
    s = sched(tasks, agents=1, policies=NO_PAUSE)
    (d,), _ = s.dispatch(0)
    ch = s.fail(d.task_id, "environment_error", 1, 0.0, "environment_error: 'nope' exited 127: its program was not found")
    t = d.task_id
    assert s.status(t) is S.FAILED and s.task(t).failures == {"environment_error": 1}  # no retry
    assert [a.kind for a in of(Alert, ch)] == ["attention"]
    assert of(PauseChanged, ch) == [PauseChanged(True, f"environment_error in task {t}: environment_error: "
                                                       "'nope' exited 127: its program was not found")]
    assert s.paused and s.dispatch(2)[0] == []  # nothing more is spent on the broken toolchain
    assert not of(BreakerChanged, ch)
    s.resume(3)
    for now in range(4, 4 + 2 * 6, 2):  # the other tasks: the same error each time
        dispatched, _ = s.dispatch(now)
        assert dispatched, "the backend's breaker must not stop dispatching"
        changes = s.fail(dispatched[0].task_id, "environment_error", now + 1, 0.0, "boom")
        assert not of(BreakerChanged, changes)
        s.resume(now + 1)
    assert s.counts()[S.FAILED] == 7


# ---------------------------------------------------------------- retries


def fail_until_terminal(s: Scheduler, tid: str, kind: str, **kw):
    """Fail ``tid`` with ``kind`` every attempt; return the retry delays seen."""
    now, delays = 0.0, []
    while True:
        s.tick(now)
        d, _ = s.dispatch(now)
        if not d:  # e.g. the breaker opened: wait for it
            now = s.next_deadline()
            continue
        assert [x.task_id for x in d] == [tid]
        ch = s.fail(tid, kind, now, 0.0, "boom", **kw)
        if s.status(tid) is S.FAILED:
            return delays, ch
        retry_at = transitions(ch) and [c for c in ch if getattr(c, "new", None) is S.RETRY_WAIT][0].retry_at
        delays.append(retry_at - now)
        now = retry_at


@pytest.mark.parametrize(("kind", "retries"), [("network_error", 5), ("rate_limited", 5), ("file_locked", 10),
                                                ("validation_failed", 2), ("agent_error", 3), ("git_conflict", 0),
                                                ("timeout", 2), ("budget_exhausted", 0), ("interrupted", 3)])
def test_retry_counts_per_failure_type(kind, retries):
    s = sched([task("a")], agents=2, retry_budget_usd=100, policies=NO_PAUSE)
    delays, ch = fail_until_terminal(s, "a", kind)
    assert len(delays) == retries
    assert s.task("a").attempts == retries + 1
    assert any(a.kind == "attention" for a in of(Alert, ch))


def test_exponential_backoff_uses_seeded_jitter():
    s = sched([task("a")], seed=7, retry_budget_usd=100, policies=NO_PAUSE)
    delays, _ = fail_until_terminal(s, "a", "network_error")
    mirror = random.Random(7)
    expected = [n + n * 0.25 * (mirror.random() * 2 - 1) for n in (1, 2, 4, 8, 16)]
    assert delays == pytest.approx(expected)


def test_linear_immediate_and_retry_after():
    delays, _ = fail_until_terminal(sched([task("a")], retry_budget_usd=100, policies=NO_PAUSE), "a", "file_locked")
    assert delays == [5.0] * 10
    delays, _ = fail_until_terminal(sched([task("a")], retry_budget_usd=100, policies=NO_PAUSE), "a", "validation_failed")
    assert delays == [0.0, 0.0]
    delays, _ = fail_until_terminal(sched([task("a")], retry_budget_usd=100, policies=NO_PAUSE), "a", "rate_limited", retry_after=30)
    assert delays == [30.0] * 5


def test_backoff_cap_from_policies():
    rules = {**PoliciesSection().retries, "network_error": RetryRule(max_retries=9, backoff="exponential")}
    s = sched([task("a")], policies=PoliciesSection(retries=rules, backoff_jitter=0, failure_rate_pause=1.0),
              retry_budget_usd=100)
    delays, _ = fail_until_terminal(s, "a", "network_error")
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_immediate_retry_goes_back_to_ready_with_feedback():
    s = sched([task("a")])
    s.dispatch(0)
    ch = s.fail("a", "validation_failed", 1, 0.0, "test_x failed: 1 != 2")
    assert transitions(ch) == [("a", "running", "retry_wait"), ("a", "retry_wait", "ready")]
    d = run_one(s, 1)
    assert (d.attempt, d.previous_failure, d.feedback) == (2, "validation_failed", "test_x failed: 1 != 2")


def test_agent_error_retries_on_a_different_agent_network_error_on_the_same():
    s = sched([task("a"), task("b", priority="LOW")], agents=2)
    first = {d.task_id: d.agent_id for d in s.dispatch(0)[0]}
    assert first == {"a": "L3.1", "b": "L3.2"}
    s.succeed("b", 0.5)
    s.fail("a", "agent_error", 1, 0, "crashed")
    s.tick(10)
    assert run_one(s, 10).agent_id == "L3.2"
    s.fail("a", "network_error", 11, 0)
    s.tick(20)
    assert run_one(s, 20).agent_id == "L3.2"


def test_different_agent_falls_back_to_same_when_alone():
    s = sched([task("a")])
    s.dispatch(0)
    s.fail("a", "agent_error", 0, 0)
    s.tick(10)
    assert run_one(s, 10).agent_id == "L3.1"


def test_unknown_failure_type_is_rejected_without_state_change():
    s = sched([task("a")])
    s.dispatch(0)
    with pytest.raises(ValueError, match="task a: unknown failure type 'oops'"):
        s.fail("a", "oops", 1)
    assert s.status("a") is S.RUNNING


# ---------------------------------------------------------------- illegal transitions


def test_illegal_transitions_raise_naming_task_and_states():
    s = sched([task("a"), task("b", "a")])
    with pytest.raises(IllegalTransition, match="task b: illegal transition pending -> done"):
        s.succeed("b", 0)
    with pytest.raises(IllegalTransition, match="task a: illegal transition ready -> validating"):
        s.advance("a", S.VALIDATING, 0)
    with pytest.raises(IllegalTransition, match="task a: illegal transition ready -> rolled_back"):
        s.mark_rolled_back("a", 0)
    s.dispatch(0)
    s.advance("a", S.VALIDATING, 1)
    with pytest.raises(IllegalTransition, match="validating -> running"):
        s.advance("a", S.RUNNING, 1)
    s.advance("a", S.INTEGRATING, 2)
    with pytest.raises(IllegalTransition, match="integrating -> validating"):
        s.advance("a", S.VALIDATING, 2)
    assert transitions(s.succeed("a", 3))[0] == ("a", "integrating", "done")
    with pytest.raises(CoreError, match="task a is done: only failed"):
        s.retry("a", 4)


# ---------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_five_consecutive_failures_and_half_opens_after_300s():
    s = sched([task(f"t{i}") for i in range(8)], agents=1, backend="sim", retry_budget_usd=100, policies=NO_PAUSE)
    now = 0.0
    for i in range(5):
        d = run_one(s, now)
        ch = s.fail(d.task_id, "network_error", now, 0)
        assert (s.breaker_state("sim") == "open") == (i == 4)
    assert of(BreakerChanged, ch) == [BreakerChanged("sim", "open", of(BreakerChanged, ch)[0].reason)]
    assert of(Alert, ch)[-1].kind == "breaker_open"
    assert s.dispatch(now)[0] == []  # refused while open
    assert s.next_deadline() <= now + 300
    s.tick(now + 299)
    assert s.breaker_state("sim") == "open" and s.dispatch(now + 299)[0] == []
    ch = s.tick(now + 300)
    assert BreakerChanged("sim", "half_open", "reset timeout elapsed: one trial attempt") in ch
    s.add_agent("L3.9", now + 300, backend="sim")
    d, _ = s.dispatch(now + 300)
    assert len(d) == 1  # one trial attempt only
    ch = s.succeed(d[0].task_id, now + 301)
    assert s.breaker_state("sim") == "closed" and of(BreakerChanged, ch)[0].state == "closed"
    assert len(s.dispatch(now + 301)[0]) == 2


def test_breaker_half_open_failure_reopens_and_validation_failures_do_not_count():
    s = sched([task(f"t{i}") for i in range(12)], agents=1, backend="sim", retry_budget_usd=100, policies=NO_PAUSE)
    for _ in range(4):
        s.fail(run_one(s).task_id, "agent_error", 0, 0)
    s.fail(run_one(s).task_id, "validation_failed", 0, 0)  # the backend worked: no change
    assert s.breaker_state("sim") == "closed"
    s.fail(run_one(s).task_id, "timeout", 0, 0)
    assert s.breaker_state("sim") == "open"
    s.tick(300)
    s.fail(run_one(s, 300).task_id, "network_error", 300, 0)
    assert s.breaker_state("sim") == "open"
    s.tick(599)
    assert s.breaker_state("sim") == "open"
    s.tick(600)
    assert s.breaker_state("sim") == "half_open"


def test_a_tasks_own_timeouts_do_not_count_for_the_breaker():
    s = sched([task(f"t{i}") for i in range(12)], agents=1, backend="sim", retry_budget_usd=100, policies=NO_PAUSE)
    for _ in range(6):  # validation timeouts: the backend returned its result, the task's checks hung
        s.fail(run_one(s).task_id, "timeout", 0, 0, backend_fault=False)
    assert s.breaker_state("sim") == "closed"
    for _ in range(5):  # the backend itself timing out does count
        s.fail(run_one(s).task_id, "timeout", 0, 0)
    assert s.breaker_state("sim") == "open"


def test_breaker_is_per_backend():
    s = sched([task(f"t{i}") for i in range(8)], agents=1, backend="sim", retry_budget_usd=100, policies=NO_PAUSE)
    s.add_agent("other", 0, backend="replay")
    for _ in range(5):
        s.fail(s.dispatch(0, limit=1)[0][0].task_id, "network_error", 0, 0)
    assert s.breaker_state("sim") == "open" and s.breaker_state("replay") == "closed"
    assert [d.agent_id for d in s.dispatch(0)[0]] == ["other"]


# ---------------------------------------------------------------- budgets


def test_mission_budget_alerts_at_50_75_90_100_once_each():
    s = sched([task(f"t{i}") for i in range(6)], agents=6, mission_budget_usd=10)
    s.dispatch(0)
    seen = []
    for i, cost in enumerate([4.0, 1.0, 2.5, 1.5, 0.5, 0.5]):
        seen.append([(a.data["threshold"], a.level) for a in of(Alert, s.succeed(f"t{i}", 1, cost)) if a.kind == "budget"])
    assert seen == [[], [(0.5, "info")], [(0.75, "warning")], [(0.9, "warning")], [], [(1.0, "critical")]]
    assert s.spend().total_usd == pytest.approx(10)


def test_task_that_budget_cannot_cover_fails_and_blocks_dependents():
    s = sched([task("a", cost=2), task("b", "a"), task("c", cost=0.5)], agents=2, mission_budget_usd=1)
    d, ch = s.dispatch(0)
    assert [x.task_id for x in d] == ["c"]
    assert ("a", "ready", "failed") in transitions(ch) and ("b", "pending", "blocked") in transitions(ch)
    assert s.task("a").last_failure == "budget_exhausted"
    assert [a.kind for a in of(Alert, ch)] == ["budget_exhausted"]


def test_attempts_in_flight_reserve_their_cap():
    s = sched([task(f"t{i}", cost=0.1) for i in range(4)], agents=4, mission_budget_usd=2.05, attempt_cost_cap=1.0)
    d, _ = s.dispatch(0)
    assert len(d) == 2  # 2 x $1 held; a third would need 2.1 > 2.05
    assert s.spend().reserved_usd == 2
    s.succeed(d[0].task_id, 1, 0.3)
    assert len(s.dispatch(1)[0]) == 1


def test_an_attempt_in_flight_may_spend_its_reservation_and_what_nobody_holds():
    s = sched([task("a", cost=0.4), task("b", cost=0.3), task("c", cost=0.2)], agents=2, mission_budget_usd=1.0)
    d, _ = s.dispatch(0)
    a, b = sorted(x.task_id for x in d)
    # $1 budget, $0.7 held by the two attempts: each may spend its own share plus the free $0.3
    assert s.budget_for_attempt(a) == pytest.approx(0.4 + 0.3)
    assert s.budget_for_attempt(b) == pytest.approx(0.3 + 0.3)
    s.succeed(a, 1, 0.9)  # a overspent its estimate: b keeps only its own share plus what is free
    assert s.budget_for_attempt(b) == pytest.approx(1.0 - 0.9 - 0.3 + 0.3)
    s.fail(b, "network_error", 2, 0.5, "boom", None)
    assert s.budget_for_attempt("c") == 0.0  # past the budget: nothing, never negative


def test_retry_budget_denies_a_retry_it_cannot_cover():
    s = sched([task("a", cost=0.1)], retry_budget_usd=0.25)
    s.dispatch(0)
    s.fail("a", "network_error", 0, 0.1)  # first attempt is not a retry
    s.tick(5)
    s.dispatch(5)
    ch = s.fail("a", "network_error", 5, 0.2)  # retry spend 0.2 + next 0.1 > 0.25
    assert s.status("a") is S.FAILED and "retry budget exhausted" in s.task("a").reason
    assert {a.kind for a in of(Alert, ch)} >= {"retry_budget", "retry_budget_exhausted", "attention"}
    assert s.spend().retry_usd == pytest.approx(0.2)


def test_operator_raises_budget_and_retries():
    s = sched([task("a", cost=2)], mission_budget_usd=1)
    s.dispatch(0)
    assert s.status("a") is S.FAILED
    s.set_budget(0, mission_usd=5)
    s.retry("a", 1)
    assert run_one(s, 1).task_id == "a"


# ---------------------------------------------------------------- failure rate, pause


def test_failure_rate_over_15_percent_pauses_after_5_attempts():
    s = sched([task(f"t{i}") for i in range(10)], agents=1, retry_budget_usd=100)
    s.fail(run_one(s).task_id, "validation_failed", 0)
    for _ in range(3):
        assert not s.paused
        s.succeed(run_one(s).task_id, 0)
    ch = s.succeed(run_one(s).task_id, 0)  # 1 of 5 = 20 %
    assert s.paused and PauseChanged(True, s.pause_reason) in ch and "20%" in s.pause_reason
    assert s.dispatch(1) == ([], [])
    assert s.resume(2) == [PauseChanged(False, "resumed")]
    assert run_one(s, 2)


def test_failure_rate_at_or_below_threshold_does_not_pause():
    s = sched([task(f"t{i}") for i in range(8)], agents=1, policies=PoliciesSection(failure_rate_pause=0.2))
    s.fail(run_one(s).task_id, "validation_failed", 0)
    for _ in range(4):
        s.succeed(run_one(s).task_id, 0)
    assert not s.paused  # exactly 20 % is not > 20 %


def test_interruptions_do_not_count_as_failures():
    s = sched([task(f"t{i}") for i in range(6)], agents=1)
    for _ in range(5):
        s.fail(run_one(s).task_id, "interrupted", 0)
    assert not s.paused


# ---------------------------------------------------------------- autoscaling


def test_autoscale_by_queue_depth_steps():
    s = sched([task(f"t{i:02}") for i in range(40)], agents=0, pool_min=4, pool_max=12)
    ch = s.tick(0)
    assert of(PoolTarget, ch)[0].size == 12
    assert [a.kind for a in of(Alert, ch)] == ["queue_backup"]  # 40 > 30
    assert s.tick(1) == []  # no repeat
    sizes = []
    for n in range(40):
        s.add_agent(f"a{n}", 2)
    s.dispatch(2)  # everything runs: queue 0
    sizes += [c.size for c in of(PoolTarget, s.tick(3))]
    assert sizes == [4]
    s2 = sched([task(f"t{i:02}") for i in range(10)], agents=0)
    assert of(PoolTarget, s2.tick(0))[0].size == 8


def test_operator_scale_overrides_autoscaling_until_released():
    s = sched([task(f"t{i}") for i in range(20)], agents=0)
    assert s.scale(6, 0) == [PoolTarget(6, "operator")]
    assert s.tick(1) == []
    assert s.scale(None, 2) == []
    assert of(PoolTarget, s.tick(3))[0].size == 12
    with pytest.raises(ValueError, match="pool size 13 out of range 1..12"):
        s.scale(13, 4)


def test_draining_agent_is_removed_when_its_task_ends():
    s = sched([task("a")], agents=2)
    s.dispatch(0)
    assert s.remove_agent("L3.2", 0) == [AgentChanged("L3.2", "removed", None)]
    assert s.remove_agent("L3.1", 0) == [AgentChanged("L3.1", "draining", "a")]
    assert AgentChanged("L3.1", "removed", None) in s.succeed("a", 1)
    assert s.agents() == []


# ---------------------------------------------------------------- propagation and operator ops


def test_terminal_failure_blocks_transitive_dependents_and_retry_unblocks():
    s = sched([task("a"), task("b", "a"), task("c", "b"), task("e"), task("f", "c", "e")], agents=2)
    s.dispatch(0)
    s.fail("e", "git_conflict", 1)
    ch = s.fail("a", "git_conflict", 1)
    assert transitions(ch) == [("a", "running", "failed"), ("b", "pending", "blocked"), ("c", "pending", "blocked")]
    assert s.status("f") is S.BLOCKED
    with pytest.raises(CoreError, match="task b cannot be retried while its dependency a is failed"):
        s.retry("b", 2)
    ch = s.retry("a", 2)
    assert transitions(ch) == [("a", "failed", "ready"), ("b", "blocked", "pending"), ("c", "blocked", "pending")]
    assert s.status("f") is S.BLOCKED  # still held by e
    assert s.task("a").failures == {}


def test_rollback_lists_done_dependents_and_cancels_running_ones():
    s = sched([task("a"), task("b", "a"), task("c", "a"), task("d", "c")], agents=2)
    s.dispatch(0)
    s.succeed("a", 1)
    s.dispatch(1)
    s.succeed("b", 2)
    affected, ch = s.mark_rolled_back("a", 3)
    assert affected == ["b"]
    assert of(CancelRunning, ch) == [CancelRunning("c", "L3.1", 1, "dependency a rolled back")]
    assert s.status("c") is S.CANCELLED and s.status("d") is S.BLOCKED and s.status("a") is S.ROLLED_BACK
    assert s.locks() == [] and s.idle_agents() == ["L3.1", "L3.2"]
    assert s.is_finished()
    with pytest.raises(IllegalTransition):
        s.succeed("c", 4)


def test_cancel_dependents_cancels_queued_and_running():
    s = sched([task("a"), task("b", "a"), task("c", "b"), task("x")], agents=2)
    s.dispatch(0)
    s.succeed("a", 1)
    s.dispatch(1)
    ch = s.cancel_dependents("a", 2)
    assert of(CancelRunning, ch) == [CancelRunning("b", "L3.1", 1, "operator cancelled dependents of a")]
    assert {t: s.status(t) for t in "bc"} == {"b": S.CANCELLED, "c": S.CANCELLED}
    assert s.spend().reserved_usd == 0
    s.settle_cancelled("b", 1, 0.3, 3)
    assert s.spend().total_usd == pytest.approx(0.3)


def test_cancel_one_task_blocks_its_dependents_until_it_is_retried():
    s = sched([task("a"), task("b", "a"), task("c", "b"), task("x"), task("y")], agents=2)
    s.dispatch(0)  # a and x run
    ch = s.cancel("a", 1)  # running: its attempt is stopped, its queued dependents blocked
    assert of(CancelRunning, ch) == [CancelRunning("a", "L3.1", 1, "cancelled by operator")]
    assert {t: s.status(t) for t in "abc"} == {"a": S.CANCELLED, "b": S.BLOCKED, "c": S.BLOCKED}
    assert s.cancel("y", 1) and s.status("y") is S.CANCELLED  # queued: cancelled, nothing to stop
    s.succeed("x", 2)
    assert s.cancel("x", 3) == [] and s.status("x") is S.DONE  # done: nothing to cancel
    assert s.cancel("a", 3) == []  # already cancelled
    s.settle_cancelled("a", 1, 0.0, 3)
    s.retry("a", 4)
    assert {t: s.status(t) for t in "abc"} == {"a": S.READY, "b": S.PENDING, "c": S.PENDING}


def test_cancelled_attempt_holds_its_budget_until_settled():
    s = sched([task("a"), task("b", "a", cost=0.1), task("c", "a", cost=0.1)], agents=2,
              mission_budget_usd=1.05, attempt_cost_cap=1.0)
    s.dispatch(0)
    s.succeed("a", 1)
    s.dispatch(1)  # b holds $1 of $1.05; c waits
    assert s.status("c") is S.READY
    s.cancel_dependents("a", 2)
    s.retry("c", 2)
    assert s.dispatch(2)[0] == []  # b's stopped attempt may still cost $1
    s.settle_cancelled("b", 1, 0.2, 3)
    assert run_one(s, 3).task_id == "c"


def test_pause_stops_dispatch_only():
    s = sched([task("a"), task("b")], agents=1)
    s.dispatch(0)
    s.pause("operator", 1)
    s.succeed("a", 2)
    assert s.dispatch(2) == ([], [])
    s.resume(3)
    assert run_one(s, 3).task_id == "b"


# ---------------------------------------------------------------- crash recovery


def test_restore_interrupts_active_tasks_and_keeps_done():
    tasks = [task("a"), task("b", "a", files=("f",)), task("c", "b"), task("d", "a")]
    saved = {"a": SavedTask("done", attempts=1), "b": SavedTask("validating", attempts=2,
                                                                failures={"network_error": 1}),
             "c": SavedTask("pending"), "d": SavedTask("pending")}
    s, ch = Scheduler.restore(tasks, saved, now=100.0, spent_usd=13, mission_budget_usd=25)
    assert s.status("a") is S.DONE
    assert ("b", "running", "retry_wait") in transitions(ch) and s.status("b") is S.READY
    assert ("d", "pending", "ready") in transitions(ch)
    assert s.task("b").failures == {"network_error": 1, "interrupted": 1}
    assert s.locks() == []
    s.add_agent("L3.1", 100)
    d = run_one(s, 100)
    assert (d.task_id, d.attempt) == ("b", 3)
    # 50 % was passed before the crash: not repeated; 75 % is new
    alerts = [a.data["threshold"] for a in of(Alert, s.succeed("b", 101, 6)) if a.kind == "budget"]
    assert alerts == [0.75]


def test_restore_retry_wait_keeps_deadline_and_interrupt_rule_runs_out():
    saved = {"a": SavedTask("retry_wait", attempts=1, retry_at=50.0), "b": SavedTask("running", attempts=4,
                                                                                      failures={"interrupted": 3})}
    s, ch = Scheduler.restore([task("a"), task("b"), task("c", "b")], saved, now=10.0)
    assert s.status("a") is S.RETRY_WAIT and s.next_deadline() == 50.0
    assert s.status("b") is S.FAILED and s.status("c") is S.BLOCKED
    s.tick(50)
    assert s.status("a") is S.READY


def test_redispatch_after_an_interrupted_attempt_says_so_not_retry_after_none():
    """`resume` puts an interrupted attempt's task back to ready without a failure: its next
    dispatch said "retry after None" (seen on `resume` after a SIGKILLed coordinator)."""
    s, _ = Scheduler.restore([task("a")], {"a": SavedTask("ready", attempts=1)}, now=0.0)
    s.add_agent("L3.1", 0.0)
    _, changes = s.dispatch(0.0)
    reasons = [c.reason for c in changes if isinstance(c, TaskTransition) and c.task_id == "a"]
    assert reasons and "None" not in reasons[-1]
    assert reasons[-1] == "dispatched again (attempt 2)"
