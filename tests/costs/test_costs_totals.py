"""The console's aggregate cost path (cost_totals) agrees with spend_summary + projection."""

from __future__ import annotations

import json
import random

import pytest

from hybrid_tui.costs import accounting as acc
from hybrid_tui.store import StoreError
from hybrid_tui.store import models as m

from costs_run_fixture import RUN_ID, T0


def _assert_same(run_id: str) -> None:
    spend = acc.spend_summary(run_id)
    proj = acc.projection(run_id)
    totals = acc.cost_totals(run_id)
    assert totals.spent == pytest.approx(spend.total)
    assert totals.retry_spent == pytest.approx(spend.retry_spent)
    assert list(totals.by_model) == list(spend.by_model)
    assert totals.by_model == pytest.approx(spend.by_model)
    for name in ("projected_total", "remaining_estimate", "actual_to_estimate_ratio", "spent"):
        assert getattr(totals.projection, name) == pytest.approx(getattr(proj, name)), name
    assert totals.projection.remaining_tasks == proj.remaining_tasks
    assert totals.projection.finished_tasks == proj.finished_tasks
    assert totals.projection.mission_budget == proj.mission_budget


def test_cost_totals_match_the_hand_computed_run(open_run):
    _assert_same(RUN_ID)
    totals = acc.cost_totals(RUN_ID)
    assert totals.spent == pytest.approx(0.57925)
    assert totals.projection.over_budget


def test_cost_totals_match_on_a_varied_run(open_run):
    """Model hints, CRITICAL/long/security-checked tasks, unrecorded costs priced from tokens,
    planning attempts, running attempts over their estimate, cancelled and rolled-back tasks."""
    rng = random.Random(7)
    statuses = ["pending", "ready", "running", "done", "rolled_back", "failed", "cancelled", "blocked"]
    specs = ["{}", "not json", json.dumps({"validation": {"security_checks": ["bandit"]}}),
             json.dumps({"validation": {"security_checks": []}}), json.dumps({"validation": None})]
    with open_run.write():
        for i in range(60):
            m.Task.create(
                run=RUN_ID, task_id=f"V{i}", issue_id="ISSUE-1", title=f"v{i}",
                priority=rng.choice(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
                estimated_duration_minutes=rng.choice([5, 30, 45]),
                estimated_input_tokens=rng.randrange(0, 50_000), estimated_output_tokens=rng.randrange(0, 9_000),
                model_hint=rng.choice([None, "", "claude-3-haiku"]), spec_json=rng.choice(specs),
                status=rng.choice(statuses), created_at=T0, updated_at=T0,
            )
            for number in range(1, rng.randrange(1, 4)):
                m.Attempt.create(
                    run=RUN_ID, task_id=f"V{i}", number=number, phase=rng.choice(["implementing", "retry", "", "planning"]),
                    model=rng.choice(["claude-sonnet-4-5", "claude-3-haiku"]), started_at=T0 + rng.random() * 900,
                    finished_at=None if number == 2 else T0 + 950, outcome=rng.choice(["running", "succeeded", "failed"]),
                    input_tokens=rng.randrange(0, 40_000), output_tokens=rng.randrange(0, 4_000),
                    cost_usd=rng.choice([0.0, 0.0, rng.random()]),
                )
    _assert_same(RUN_ID)


def test_cost_totals_of_an_unknown_run_is_a_store_error(open_run):
    with pytest.raises(StoreError, match="nope"):
        acc.cost_totals("nope")
