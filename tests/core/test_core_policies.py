"""Policy numbers of DESIGN.md / the review, as pure functions and the state machine."""

from __future__ import annotations

import random

import pytest

from hybrid_tui.core import (
    TRANSITIONS,
    IllegalTransition,
    TaskInfo,
    TaskStatus,
    check_transition,
    jittered_backoff,
    priority_score,
    retry_delay,
    scaling_target,
    select_model,
)
from hybrid_tui.spec.models import ModelsSection, PoliciesSection, PriorityWeights, SisTask

W = PriorityWeights()


@pytest.mark.parametrize(("priority", "points"), [("CRITICAL", 100), ("HIGH", 70), ("MEDIUM", 40), ("LOW", 10)])
def test_priority_points(priority, points):
    score = priority_score(W, priority=priority, has_dependencies=True, dependents=0, duration_minutes=0,
                           file_locked=False)
    assert score == points


def test_score_terms_default_weights():
    base = dict(priority="LOW", has_dependencies=True, dependents=0, duration_minutes=0, file_locked=False)
    assert priority_score(W, **{**base, "has_dependencies": False}) == 10 + 50
    assert priority_score(W, **{**base, "dependents": 3}) == 10 + 30
    assert priority_score(W, **{**base, "duration_minutes": 120}) == 10 - 12  # 120 / 10
    assert priority_score(W, **{**base, "duration_minutes": 1000}) == 10 - 30  # capped at 30
    assert priority_score(W, **{**base, "file_locked": True}) == 10 - 40


def test_every_weight_is_overridable():
    w = PriorityWeights(critical=1, high=2, medium=3, low=4, no_dependencies_bonus=5, per_dependent_bonus=6,
                        duration_divisor=2, duration_penalty_cap=7, locked_file_penalty=8)
    assert priority_score(w, priority="HIGH", has_dependencies=False, dependents=2, duration_minutes=10,
                          file_locked=True) == 2 + 5 + 12 - 5 - 8
    assert priority_score(w, priority="LOW", has_dependencies=True, dependents=0, duration_minutes=100,
                          file_locked=False) == 4 - 7


def test_backoff_doubles_from_base_with_quarter_jitter_and_caps_at_60():
    rng, mirror = random.Random(42), random.Random(42)
    for n, nominal in enumerate([1, 2, 4, 8, 16, 32, 60, 60]):
        delay = jittered_backoff(n, 1.0, 60.0, 0.25, rng)
        assert delay == pytest.approx(nominal + nominal * 0.25 * (mirror.random() * 2 - 1))
        assert 0.75 * nominal <= delay <= 1.25 * nominal


def test_backoff_jitter_spreads_retries():
    delays = {round(jittered_backoff(3, 1.0, 60.0, 0.25, random.Random(seed)), 6) for seed in range(20)}
    assert len(delays) == 20
    assert jittered_backoff(3, 1.0, 60.0, 0.0, random.Random(1)) == 8


def test_retry_delay_by_backoff_kind():
    p = PoliciesSection()
    rng = random.Random(0)
    assert retry_delay(p.retries["file_locked"], 7, p, rng) == 5  # linear 5 s, every time
    assert retry_delay(p.retries["validation_failed"], 1, p, rng) == 0  # immediate
    assert retry_delay(p.retries["rate_limited"], 0, p, rng, retry_after=42) == 42  # honours retry-after
    assert 0.75 <= retry_delay(p.retries["rate_limited"], 0, p, rng) <= 1.25  # none given: exponential


@pytest.mark.parametrize(("depth", "size"), [(0, 4), (5, 4), (6, 8), (15, 8), (16, 12), (30, 12), (500, 12)])
def test_scaling_table(depth, size):
    assert scaling_target(PoliciesSection().scaling, depth, 4, 12) == size


def test_scaling_clamped_to_pool_bounds():
    steps = PoliciesSection().scaling
    assert scaling_target(steps, 20, 2, 6) == 6
    assert scaling_target(steps, 0, 5, 12) == 5


def test_default_retry_rules_match_design():
    r = PoliciesSection().retries
    assert (r["network_error"].max_retries, r["network_error"].backoff) == (5, "exponential")
    assert r["rate_limited"].backoff == "retry_after"
    assert (r["file_locked"].max_retries, r["file_locked"].backoff, r["file_locked"].base_seconds) == (10, "linear", 5)
    assert (r["validation_failed"].max_retries, r["validation_failed"].action) == (2, "with_feedback")
    assert (r["agent_error"].max_retries, r["agent_error"].action) == (3, "different_agent")
    assert (r["git_conflict"].max_retries, r["git_conflict"].action) == (0, "attention")


def test_transition_table_is_enforced_for_every_pair():
    for old in TaskStatus:
        for new in TaskStatus:
            if new in TRANSITIONS[old]:
                check_transition("t", old, new)
            else:
                with pytest.raises(IllegalTransition, match=f"task t: illegal transition {old.value} -> {new.value}"):
                    check_transition("t", old, new)


def test_lifecycle_path_is_legal():
    path = ["pending", "ready", "running", "validating", "integrating", "done", "rolled_back"]
    for a, b in zip(path, path[1:]):
        check_transition("t", TaskStatus(a), TaskStatus(b))


def _sis(**kw) -> SisTask:
    return SisTask(task_id="T-1", title="t", **kw)


def test_model_tiering():
    m = ModelsSection(implementer="cheap", strong="strong")
    assert select_model(_sis(), m) == "cheap"
    assert select_model(_sis(priority="CRITICAL"), m) == "strong"
    assert select_model(_sis(estimated_duration_minutes=31), m) == "strong"
    assert select_model(_sis(estimated_duration_minutes=30), m) == "cheap"
    assert select_model(_sis(validation={"security_checks": ["bandit -r ."]}), m) == "strong"
    assert select_model(_sis(priority="CRITICAL", model_hint="mine"), m) == "mine"


def test_taskinfo_from_sis():
    sis = _sis(priority="HIGH", domain="api", dependencies=["T-0"], estimated_duration_minutes=12,
               file_operations=[{"op": "create", "path": "a.py", "content": ""},
                                {"op": "delete", "path": "b.py"}, {"op": "intent", "path": "a.py", "intent": "x"}],
               validation={"security_checks": ["bandit"]})
    info = TaskInfo.from_sis(sis, expected_cost_usd=0.15)
    assert info == TaskInfo("T-1", "HIGH", "api", ("T-0",), ("a.py", "b.py"), 12.0, 0.15, True)
