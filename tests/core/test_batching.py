"""The core's batching rule (``[policies.batch]``): which ready tasks the scheduler gives to
ONE attempt, on one agent, and how that agent is held until the last of them ends."""

from __future__ import annotations

from hybrid_tui.core import TaskStatus
from hybrid_tui.core.batching import BatchRule, choose_batch, context_saving_tokens, cost_shares
from hybrid_tui.spec.models import BatchPolicy, PoliciesSection

from .helpers import sched, task

BATCH = PoliciesSection(batch=BatchPolicy(max_tasks=3, max_estimate_minutes=5, domains=["a11y"]))


def a11y(tid: str, path: str, minutes: float = 4, **kw):
    return task(tid, files=(path, f"tests/test_{tid}.py"), minutes=minutes, domain="a11y", **kw)


def test_small_tasks_of_one_domain_with_disjoint_files_go_to_one_agent_together():
    s = sched([a11y("a", "layout.html"), a11y("b", "dashboard.html"), a11y("c", "settings.html"),
               a11y("d", "profile.html")], agents=2, policies=BATCH)
    dispatches, _ = s.dispatch(0.0, limit=1)
    assert [d.task_id for d in dispatches] == ["a", "b", "c"]  # max_tasks = 3, best first
    assert {d.agent_id for d in dispatches} == {"L3.1"}
    assert all(d.batch == ("a", "b", "c") for d in dispatches)
    assert s.idle_agents() == ["L3.2"]
    # The second agent takes what is left, alone (a batch of one is no batch).
    (d,), _ = s.dispatch(0.0)
    assert (d.task_id, d.batch) == ("d", ())


def test_a_batch_never_shares_a_file_and_never_takes_a_locked_one():
    s = sched([a11y("a", "layout.html"), a11y("b", "layout.html"), a11y("c", "dashboard.html"),
               task("sec", files=("dashboard.html",), priority="CRITICAL", minutes=20, domain="security")],
              agents=2, policies=BATCH)
    dispatches, _ = s.dispatch(0.0)
    assert [(d.task_id, d.batch) for d in dispatches] == [("sec", ()), ("a", ())]  # b shares a's file, c is locked


def test_other_domains_long_tasks_and_retries_run_alone():
    s = sched([a11y("a", "x"), a11y("b", "y", minutes=30), task("g", files=("z",), minutes=1)],
              agents=1, policies=BATCH)
    (d,), _ = s.dispatch(0.0)
    assert d.batch == ()
    rule = BatchRule.from_policy(BATCH.batch)
    assert rule.admits("a11y", 5, 0) and not rule.admits("a11y", 5, 1) and not rule.admits("perf", 1, 0)


def test_the_agent_stays_busy_until_the_last_member_ends_and_each_ends_on_its_own():
    s = sched([a11y("a", "x"), a11y("b", "y"), a11y("c", "z"), a11y("d", "w")], agents=1, policies=BATCH)
    dispatches, _ = s.dispatch(0.0)
    assert [d.task_id for d in dispatches] == ["a", "b", "c"]
    s.succeed("a", 1.0, 0.01)
    assert s.idle_agents() == [] and s.status("a") is TaskStatus.DONE
    assert [lock.path for lock in s.locks()] == sorted(["y", "z", "tests/test_b.py", "tests/test_c.py"])
    s.fail("b", "validation_failed", 2.0, 0.01, "boom")
    assert s.idle_agents() == []
    s.succeed("c", 3.0, 0.01)
    assert s.idle_agents() == ["L3.1"]
    # b's retry runs alone, d alone too (nothing else ready to batch with it).
    s.tick(100.0)
    got = []
    while True:
        ds, _ = s.dispatch(100.0)
        if not ds:
            break
        got += [(d.task_id, d.batch) for d in ds]
        for d in ds:
            s.succeed(d.task_id, 101.0)
    assert sorted(got) == [("b", ()), ("d", ())]


def test_off_by_default_nothing_is_batched():
    s = sched([a11y("a", "x"), a11y("b", "y")], agents=1)
    (d,), _ = s.dispatch(0.0)
    assert d.batch == ()


def test_choose_batch_greedy_in_order():
    rule = BatchRule(max_tasks=6, max_estimate_minutes=10, domains=frozenset(), shared_context_tokens=5000)
    got = choose_batch(rule, "a", ["x"], [("b", ["x"]), ("c", ["y"]), ("d", ["y", "z"]), ("e", ["l"])], {"l"})
    assert got == ["a", "c"]


def test_cost_shares_and_the_context_saved():
    assert cost_shares([1.0, 3.0]) == [0.25, 0.75]
    assert cost_shares([0.0, 0.0]) == [0.5, 0.5]
    assert context_saving_tokens(5000, [7000, 2000, 9000]) == 2000 + 5000
