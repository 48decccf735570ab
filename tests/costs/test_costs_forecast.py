"""The run's time forecast: the ``estimate`` simulator started from a live scheduler's state."""

from __future__ import annotations

import random

import pytest

from hybrid_tui.core import Scheduler, TaskInfo
from hybrid_tui.costs.estimate import VirtualRun
from hybrid_tui.costs.forecast import DEFAULT_SPREAD, forecast_time, snapshot
from hybrid_tui.spec.models import PoliciesSection


def t(tid: str, *deps: str, minutes: float = 10, files: tuple[str, ...] = ()) -> TaskInfo:
    return TaskInfo(tid, dependencies=deps, files=files, estimated_duration_minutes=minutes)


def live(tasks, agents: int = 2, **kwargs) -> Scheduler:
    s = Scheduler(tasks, policies=PoliciesSection(failure_rate_pause=1.0), rng=random.Random(0),
                  pool_min=agents, pool_max=agents, **kwargs)
    for i in range(agents):
        s.add_agent(f"a{i}", 0.0, backend="sim")
    return s


def mission(n: int = 30, seed: int = 3) -> list[TaskInfo]:
    rng = random.Random(seed)
    return [t(f"t{i:02}", *[f"t{j:02}" for j in rng.sample(range(i), min(i, rng.randint(0, 2)))],
              minutes=rng.uniform(2, 30), files=(f"f{rng.randint(0, 5)}",)) for i in range(n)]


def test_before_anything_ran_it_is_the_estimate_simulators_makespan():
    tasks = mission()
    fresh = Scheduler(tasks, policies=PoliciesSection(), pool_min=3, pool_max=3)
    run = VirtualRun(fresh, {x.task_id: x.estimated_duration_minutes * 60 for x in tasks}, backend="sim")
    run.start_agents(3)
    expected = run.drive()
    forecast = forecast_time(snapshot(live(tasks, agents=3), 0.0, agents=3, backend="sim"), samples=0)
    assert forecast.remaining_seconds == pytest.approx(expected)
    assert forecast.tasks_left == 30 and forecast.finish_at == pytest.approx(expected)


def test_running_attempts_keep_their_agents_for_what_is_left_of_them():
    s = live([t("a"), t("b", "a"), t("c", minutes=5)], agents=1)
    assert [d.task_id for d in s.dispatch(0.0)[0]] == ["a"]  # path 20 > 5
    forecast = forecast_time(snapshot(s, 240.0, agents=1, backend="sim"), samples=0)
    assert forecast.remaining_seconds == pytest.approx((600 - 240) + 600 + 300)
    assert forecast.finish_at == pytest.approx(240 + 1260)


def test_the_backends_observed_speed_scales_what_is_left_and_done_or_failed_tasks_drop_out():
    s = live([t("a"), t("b"), t("c", "a"), t("d", "b")], agents=2)
    s.dispatch(0.0)
    s.succeed("a", 1200.0)  # twice the estimate
    s.fail("b", "git_conflict", 1200.0)  # needs attention: d is blocked, neither will finish
    s.dispatch(1200.0)
    snap = snapshot(s, 1200.0, agents=2, backend="sim")
    assert snap.speed == 2.0 and {x.info.task_id for x in snap.tasks} == {"c"}
    assert forecast_time(snap, samples=0).remaining_seconds == pytest.approx(1200)


def test_the_range_comes_from_the_duration_spread():
    s = live(mission(12), agents=2)
    snap = snapshot(s, 0.0, agents=2, backend="sim")
    assert snap.spread == DEFAULT_SPREAD  # nothing measured yet
    wide = forecast_time(snap, samples=6, seed=1)
    assert wide.low_seconds < wide.remaining_seconds < wide.high_seconds and wide.samples == 6
    exact = live([t("a"), t("b"), t("c"), t("d", "a")], agents=1)
    for now in (600.0, 1200.0, 1800.0):  # three attempts exactly as long as estimated: no spread
        d = exact.dispatch(now - 600.0)[0][0]
        exact.succeed(d.task_id, now)
    snap = snapshot(exact, 1800.0, agents=1, backend="sim")
    assert snap.spread == 0.0
    tight = forecast_time(snap, samples=4)
    assert tight.low_seconds == tight.remaining_seconds == tight.high_seconds == pytest.approx(600)


def test_a_task_in_backoff_waits_for_its_deadline_first():
    s = live([t("a")], agents=1)
    s.dispatch(0.0)
    s.fail("a", "file_locked", 60.0)  # linear backoff 5 s
    forecast = forecast_time(snapshot(s, 60.0, agents=1, backend="sim"), samples=0)
    assert forecast.remaining_seconds == pytest.approx(5 + 600)
