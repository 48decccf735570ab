"""Accounting against hand-computed figures (see conftest for the run being summed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hybrid_tui.costs import accounting as acc
from hybrid_tui.costs.pricing import PricingTable, UnknownModel
from hybrid_tui.store import StoreError

from costs_run_fixture import RUN_ID, T0


def test_spend_summary_by_phase_model_and_task(open_run):
    summary = acc.spend_summary(RUN_ID)
    assert summary.by_phase["planning"] == pytest.approx(0.00425)
    assert summary.by_phase["implementing"] == pytest.approx(0.165 + 0.24 + 0.05)
    assert summary.by_phase["retry"] == pytest.approx(0.12)
    assert summary.total == pytest.approx(0.57925)
    assert summary.by_model == pytest.approx({"claude-sonnet-4-5": 0.575, "claude-3-haiku": 0.00425})
    assert summary.by_task["T2"] == pytest.approx(0.36)
    assert summary.retry_spent == pytest.approx(0.12)
    assert summary.mission_budget == 1.0 and summary.retry_budget == 0.5
    assert summary.alert_level == 0.5  # 57.9 % of the mission budget
    assert summary.retry_alert_level is None  # 24 % of the retry budget
    assert summary.tokens["cache_read"] == 200_000 and summary.tokens["cache_write"] == 80_000


def test_projection_corrects_estimates_by_observed_ratio(open_run):
    proj = acc.projection(RUN_ID)
    # Finished T1 + T2 cost 0.525 against estimates 2 x 0.165.
    assert proj.actual_to_estimate_ratio == pytest.approx(0.525 / 0.33)
    # T3 (pending) costs 0.165 x ratio; T4 (running) the same less the 0.05 already spent.
    per_task = 0.165 * 0.525 / 0.33
    assert proj.remaining_estimate == pytest.approx(per_task + per_task - 0.05)
    assert proj.projected_total == pytest.approx(0.57925 + 2 * per_task - 0.05)
    assert proj.remaining_tasks == 2 and proj.finished_tasks == 2
    assert proj.over_budget  # ~1.05 projected against $1.00


def test_burn_series_and_rate(open_run):
    series = acc.burn_series(RUN_ID, buckets=4, now=T0 + 800)
    # Buckets of 200 s: planning + T1 finish in the first two, T2 twice in 3rd/4th, T4 running booked now.
    assert [round(p.spent, 5) for p in series] == [0.00425, 0.165, 0.24, 0.17]
    assert series[-1].cumulative == pytest.approx(0.57925)
    assert series[-1].t == pytest.approx(T0 + 800)
    # Last 300 s (500..800): T2's retry (0.12 at 700) and T4's running 0.05 -> 0.17 per 300 s.
    assert acc.burn_rate(RUN_ID, now=T0 + 800, window_seconds=300) == pytest.approx(0.17 / 300 * 3600)
    assert acc.burn_rate(RUN_ID, now=T0 + 800, window_seconds=None) == pytest.approx(0.57925 / 800 * 3600)


def test_unknown_run_is_a_store_error(open_run):
    with pytest.raises(StoreError, match="nope"):
        acc.spend_summary("nope")


@dataclass
class A:
    task_id: str
    number: int = 1
    phase: str = "implementing"
    model: str = "claude-sonnet-4-5"
    started_at: float = 0.0
    finished_at: float | None = 1.0
    outcome: str = "succeeded"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


@pytest.fixture
def table(tmp_path):
    return PricingTable.load(user_config=tmp_path / "absent.toml")


def test_unrecorded_cost_is_priced_from_tokens(table):
    attempts = [
        A("T1", input_tokens=15_000, output_tokens=8_000),  # no cost recorded -> priced: 0.165
        A("T1", number=2, cost_usd=0.10),  # recorded cost wins; second attempt counts as retry
    ]
    summary = acc.summarize_spend(attempts, mission_budget=0.3, retry_budget=0.2, table=table)
    assert summary.by_phase == pytest.approx({"planning": 0.0, "implementing": 0.165, "retry": 0.10})
    assert summary.alert_level == 0.75  # 0.265 / 0.3 = 88 %
    assert summary.retry_alert_level == 0.5


def test_unpriced_model_with_tokens_is_an_error_not_zero(table):
    with pytest.raises(UnknownModel):
        acc.summarize_spend(
            [A("T1", model="mystery", input_tokens=10)], mission_budget=1, retry_budget=1, table=table
        )


def test_alert_levels_at_each_threshold():
    assert acc.alert_level(0.49, 1.0) is None
    assert acc.alert_level(0.5, 1.0) == 0.5
    assert acc.alert_level(0.9, 1.0) == 0.9
    assert acc.alert_level(1.2, 1.0) == 1.0
    assert acc.alert_level(5.0, 0.0) is None


@dataclass
class T:
    task_id: str
    status: str
    priority: str = "MEDIUM"
    estimated_duration_minutes: float = 10
    estimated_input_tokens: int = 15_000
    estimated_output_tokens: int = 8_000
    model_hint: str | None = None
    spec_json: str = "{}"


def test_projection_prices_remaining_tasks_at_their_tiered_model(table):
    from hybrid_tui.spec.models import ModelsSection

    models = ModelsSection(implementer="claude-haiku-4-5", strong="claude-sonnet-4-5")
    tasks = [
        T("plain", "ready"),  # implementer: 15k x $1 + 8k x $5 = $0.055
        T("critical", "ready", priority="CRITICAL"),  # strong: $0.165
        T("secure", "pending", spec_json='{"validation": {"security_checks": ["bandit"]}}'),  # strong
        T("hinted", "pending", model_hint="claude-opus-4-5"),  # 15k x $5 + 8k x $25 = $0.275
        T("gone", "failed"),  # settled: costs nothing more
    ]
    proj = acc.project(tasks, [], table, models=models)
    assert proj.actual_to_estimate_ratio == 1.0  # nothing finished yet
    assert proj.remaining_estimate == pytest.approx(0.055 + 0.165 + 0.165 + 0.275)
    assert proj.remaining_tasks == 4
