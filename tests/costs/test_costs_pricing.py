"""Pricing table: hand-computed costs, overrides in their order, unknown models are errors."""

from __future__ import annotations

import pytest

from hybrid_tui.costs.pricing import PricingError, PricingTable, UnknownModel, expected_task_cost
from hybrid_tui.spec.models import SisTask, TokenEstimate, Usage


@pytest.fixture
def table(tmp_path):
    # A user config path that does not exist: the shipped table only, whatever ~ holds.
    return PricingTable.load(user_config=tmp_path / "absent.toml")


def test_sonnet_input_output_matches_review(table):
    usage = Usage(input_tokens=15_000, output_tokens=8_000)
    assert table.cost("claude-sonnet-4-5", usage) == pytest.approx(0.165)


def test_cache_reads_and_writes_priced_separately(table):
    # Sonnet 4.5: 3.00 in, 15.00 out, 3.75 cache write, 0.30 cache read per million.
    usage = Usage(
        input_tokens=10_000, output_tokens=2_000, cache_write_tokens=40_000, cache_read_tokens=100_000
    )
    expected = (10_000 * 3.00 + 2_000 * 15.00 + 40_000 * 3.75 + 100_000 * 0.30) / 1e6
    assert expected == pytest.approx(0.24)
    assert table.cost("claude-sonnet-4-5", usage) == pytest.approx(expected)


def test_cache_prices_follow_the_documented_multipliers(table):
    for name in ("claude-opus-4-5", "claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku"):
        price = table.price(name)
        assert price.cache_write == pytest.approx(price.input * 1.25), name
        assert price.cache_read == pytest.approx(price.input * 0.1), name


def test_batch_pricing_halves_every_component(table):
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000)
    full = table.cost("claude-haiku-4-5", usage)
    assert full == pytest.approx(1.0 + 5.0 + 0.10)
    assert table.cost("claude-haiku-4-5", usage, batch=True) == pytest.approx(3.05)


def test_aliases_and_dated_snapshots_resolve(table):
    usage = Usage(input_tokens=2_000, output_tokens=3_000)
    sonnet = table.cost("claude-sonnet-4-5", usage)
    assert table.cost("claude-sonnet-4.5", usage) == sonnet
    assert table.cost("claude-sonnet-4-5-20250929", usage) == sonnet
    assert table.cost("claude-haiku-3.5", usage) == table.cost("claude-3-5-haiku", usage)
    # The review's "Claude Haiku" at $0.25/$1.25: $0.00425 per planner call.
    assert table.cost("claude-3-haiku", usage) == pytest.approx(0.00425)


def test_offline_backends_cost_like_sonnet(table):
    usage = Usage(input_tokens=15_000, output_tokens=8_000)
    assert table.cost("sim", usage) == pytest.approx(0.165)
    assert table.cost("replay", usage) == pytest.approx(0.165)


def test_unknown_model_is_an_error_not_zero(table):
    with pytest.raises(UnknownModel) as info:
        table.cost("claude-imaginary-9", Usage(input_tokens=1))
    assert "claude-imaginary-9" in str(info.value)
    errors = table.check_models(["claude-sonnet-4-5", "claude-imaginary-9", None, "claude-imaginary-9"])
    assert len(errors) == 1 and "claude-imaginary-9" in errors[0]
    assert table.check_models(["sonnet", "claude-haiku-4-5"]) == []


def test_mission_overrides_beat_user_file_beat_shipped(tmp_path):
    user = tmp_path / "pricing.toml"
    user.write_text(
        'batch_discount = 0.4\n[models."claude-haiku-4-5"]\ninput = 2.0\noutput = 10.0\n'
        '[models."house-model"]\ninput = 1.0\noutput = 2.0\n'
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    table = PricingTable.load(user_config=user)
    assert table.cost("claude-haiku-4-5", usage) == pytest.approx(12.0)
    assert table.cost("house-model", usage) == pytest.approx(3.0)
    assert table.cost("house-model", usage, batch=True) == pytest.approx(1.8)
    # A new input price re-derives the cache prices instead of keeping the shipped ones.
    assert table.price("claude-haiku-4-5").cache_read == pytest.approx(0.2)

    table = PricingTable.load({"claude-haiku-4-5": {"input": 0.25, "output": 1.25}}, user_config=user)
    assert table.cost("claude-haiku-4-5", usage) == pytest.approx(1.5)
    assert table.cost("house-model", usage) == pytest.approx(3.0)


def test_override_of_an_alias_prices_its_target(table, tmp_path):
    table = PricingTable.load({"sonnet": {"output": 20.0}}, user_config=tmp_path / "absent.toml")
    assert table.price("claude-sonnet-4-5").output == 20.0
    assert table.price("claude-sonnet-4-5").input == 3.0


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"claude-haiku-4-5": {"inptu": 1.0}}, "claude-haiku-4-5.inptu"),
        ({"claude-haiku-4-5": {"input": -1.0}}, "claude-haiku-4-5.input"),
        ({"brand-new": {"input": 1.0}}, "brand-new: a new model needs output"),
    ],
)
def test_bad_overrides_name_the_field(tmp_path, overrides, fragment):
    with pytest.raises(PricingError) as info:
        PricingTable.load(overrides, user_config=tmp_path / "absent.toml")
    assert fragment in str(info.value)


def test_bad_user_file_names_the_file(tmp_path):
    user = tmp_path / "pricing.toml"
    user.write_text("batch_discount = [\n")
    with pytest.raises(PricingError, match="pricing.toml"):
        PricingTable.load(user_config=user)


def test_expected_task_cost_uses_sis_estimates(table):
    task = SisTask(task_id="T1", title="t", estimated_tokens=TokenEstimate(input=15_000, output=8_000))
    assert table.expected_task_cost(task, "claude-sonnet-4-5") == pytest.approx(0.165)
    assert expected_task_cost(task, "claude-sonnet-4-5", table) == pytest.approx(0.165)
    with pytest.raises(UnknownModel):
        table.expected_task_cost(task, "nope")


def test_mission_pricing_check_for_validation(tmp_path):
    from hybrid_tui.costs.pricing import check_mission_pricing
    from hybrid_tui.spec.models import MissionFile

    absent = tmp_path / "absent.toml"
    ok = MissionFile.model_validate({"mission": {"name": "x"}})
    assert check_mission_pricing(ok, user_config=absent) == []
    bad = MissionFile.model_validate(
        {"mission": {"name": "x"}, "models": {"strong": "claude-imaginary-9"}, "pricing": {"house": {"input": 1.0}}}
    )
    assert check_mission_pricing(bad, user_config=absent) == [
        "mission.toml:pricing.house: a new model needs output"
    ]
    bad.pricing = {}
    hinted = [SisTask(task_id="t", title="t", model_hint="claude-other-1")]
    problems = check_mission_pricing(bad, hinted, user_config=absent)
    assert len(problems) == 2 and "claude-imaginary-9" in problems[0] and "claude-other-1" in problems[1]
