"""The default, critical-path aware priority; remaining paths kept incrementally; estimates
re-derived from attempts; why a queued task waits."""

from __future__ import annotations

import random

import pytest

from hybrid_tui.core import Scheduler, TaskStatus, TaskWaiting, WaitReason
from hybrid_tui.spec.models import PoliciesSection, PriorityWeights

from .helpers import NO_PAUSE, REVIEW, of, sched, task

S = TaskStatus


def order_with_one_agent(s: Scheduler) -> list[str]:
    order, now = [], 0.0
    while not s.is_finished():
        dispatches, _ = s.dispatch(now)
        assert len(dispatches) == 1
        order.append(dispatches[0].task_id)
        now += 1
        s.succeed(dispatches[0].task_id, now)
    return order


def chain_and_independents() -> list:
    return [task("a"), task("b", "a"), task("c", "b"), task("i1", minutes=5), task("i2", minutes=5)]


def test_default_follows_the_critical_path_where_the_review_formula_starves_it():
    # Once a is done, b has dependencies (no +50) so the review ranks the short independent
    # tasks first; the critical path keeps the chain going.
    assert PoliciesSection().priority.mode == "critical_path"
    assert order_with_one_agent(sched(chain_and_independents())) == ["a", "b", "c", "i1", "i2"]
    assert order_with_one_agent(sched(chain_and_independents(), policies=REVIEW)) == ["a", "i1", "i2", "b", "c"]


def test_the_class_decides_before_the_path():
    s = sched([task("long", priority="LOW", minutes=500), *[task(f"l{i}", "long", priority="LOW") for i in range(3)],
               task("crit", priority="CRITICAL", minutes=1)])
    assert s.critical_path_minutes("long") == 510
    assert s.ready_ids() == ["crit", "long"]


def test_among_tasks_contending_for_a_file_the_longer_path_goes_first_and_the_other_says_why():
    s = sched([task("short", files=("f.py",), minutes=30), task("head", files=("f.py",), minutes=10),
               task("tail", "head", minutes=40)], agents=2)
    dispatches, changes = s.dispatch(0)
    assert [d.task_id for d in dispatches] == ["head"]  # path 50 beats 30 though it is shorter itself
    assert of(TaskWaiting, changes) == [TaskWaiting("short", "lock", "f.py held by task head", "head")]
    assert s.wait_reason("short") == WaitReason("lock", "f.py held by task head", holder="head")
    assert s.wait_reason("tail").kind == "dependencies"


def test_paths_are_kept_incrementally_as_tasks_arrive():
    s = sched([task("a", minutes=1), task("b", "a", minutes=2)], agents=0)
    assert s.critical_path_minutes("a") == 3
    s.add_tasks([task("c", "b", minutes=100), task("d", "a", minutes=5)])
    assert (s.critical_path_minutes("a"), s.critical_path_minutes("b")) == (103, 102)
    assert s.ready_ids() == ["a"]


def brute_force_paths(s: Scheduler) -> dict[str, float]:
    paths: dict[str, float] = {}
    for tid in reversed(s.task_ids()):
        view = s.task(tid)
        paths[tid] = view.estimate_minutes + max((paths[d] for d in s.dependents(tid)), default=0.0)
    return paths


@pytest.mark.parametrize("seed", range(10))
def test_incremental_paths_match_a_full_recomputation(seed):
    rng = random.Random(seed)
    s = sched([], agents=3, policies=NO_PAUSE)
    ids: list[str] = []
    now = 0.0
    for batch in range(6):
        new = []
        for i in range(rng.randint(1, 15)):
            tid = f"t{batch}.{i}"
            pool = ids + [t.task_id for t in new]
            deps = tuple(rng.sample(pool, min(len(pool), rng.choice([0, 1, 1, 2, 3]))))
            new.append(task(tid, *deps, minutes=rng.uniform(1, 60)))
        s.add_tasks(new, now)
        ids += [t.task_id for t in new]
        for _ in range(rng.randint(0, 4)):  # attempts that run long and fail raise estimates
            now += rng.uniform(0, 7200)
            dispatches, _ = s.dispatch(now)
            for d in dispatches:
                if rng.random() < 0.5:
                    s.fail(d.task_id, "validation_failed", now + rng.uniform(0, 7200))
                else:
                    s.succeed(d.task_id, now + rng.uniform(0, 600))
        expected = brute_force_paths(s)
        assert {tid: round(s.critical_path_minutes(tid), 6) for tid in ids} == \
            {tid: round(p, 6) for tid, p in expected.items()}


def test_a_backends_speed_scales_the_estimates_and_a_long_failure_raises_the_task_estimate():
    s = sched([task("a"), task("b"), task("c", "b", minutes=5)], agents=2)
    assert s.speed() == 1.0 and s.estimate_seconds("a") == 600
    s.dispatch(0)
    s.succeed("a", 1200)  # twice as slow as estimated
    assert s.speed("replay") == 2.0 and s.speed() == 2.0 and s.speed("other") == 1.0
    assert s.estimate_seconds("c") == 5 * 60 * 2.0
    s.fail("b", "validation_failed", 4800)  # ran 4800 s = 40 estimate minutes at speed 2
    view = s.task("b")
    assert view.estimate_minutes == 40 and view.path_minutes == 45 and view.actual_seconds == 4800
    assert s.task("a").actual_seconds == 1200


def test_wait_reasons_of_queued_tasks():
    s = sched([task("a"), task("b"), task("c")], agents=1, policies=NO_PAUSE)
    assert [d.task_id for d in s.dispatch(0)[0]] == ["a"]
    assert s.wait_reason("a") is None
    assert s.wait_reason("b") == WaitReason("agent", "waiting for an agent (1 of 1 busy)")
    assert s.dispatch_blocker() == WaitReason("agent", "waiting for an agent (1 of 1 busy)")
    s.fail("a", "network_error", 1)
    reason = s.wait_reason("a")
    assert reason.kind == "backoff" and reason.until == s.task("a").retry_at > 1
    s.pause("operator", 2)
    assert s.wait_reason("b") == WaitReason("paused", "paused: operator")


def test_the_budget_held_by_attempts_in_flight_is_a_wait_reason():
    s = sched([task("a", cost=6), task("b", cost=6)], agents=2, mission_budget_usd=10)
    assert [d.task_id for d in s.dispatch(0)[0]] == ["a"]
    assert s.wait_reason("b").kind == "budget"
    assert s.dispatch_blocker().message == "budget: attempts in flight hold $6.00 of the $10.00 left"


def test_review_mode_keeps_its_locked_file_penalty_and_the_default_has_none():
    tasks = [task("a", files=("f",)), task("b", files=("f",))]
    review = sched(tasks, agents=1, policies=REVIEW)
    default = sched(tasks, agents=1, policies=PoliciesSection(priority=PriorityWeights()))
    for s in (review, default):
        s.dispatch(0)
    assert review.score("b") == 40 + 50 - 1 - 40
    assert default.score("b") == default.score("a")


def test_the_score_an_operator_reads_is_the_remaining_path_or_the_review_score():
    tasks = [task("a", minutes=5), task("b", "a", minutes=20)]
    assert sched(tasks).shown_score("a") == 25
    assert sched(tasks, policies=REVIEW).shown_score("a") == 40 + 50 + 10 - 0.5


def test_a_resumed_scheduler_learns_the_same_from_the_stored_attempts():
    tasks = [task("a"), task("b"), task("c", "b", minutes=5)]
    live = sched(tasks, agents=2)
    live.dispatch(0)
    live.succeed("a", 1200)
    live.fail("b", "validation_failed", 4800)
    resumed = sched(tasks, agents=0)
    resumed.learn_attempt("a", "replay", 1200, True)
    resumed.learn_attempt("b", "replay", 4800, False)
    for s in (live, resumed):
        assert s.speed("replay") == 2.0
        assert (s.task("b").estimate_minutes, s.critical_path_minutes("b")) == (40, 45)
