"""`hybrid-tui estimate` on a mission built to the review's section 2.1 assumptions.

6 issues (6 planner calls, "6 L2 Agents") of 3 tasks each = 18 tasks; Haiku planners at
$0.25/$1.25 with 2,000 in / 3,000 out; Sonnet implementers at $3/$15 with 15,000 in /
8,000 out; the L1 coordinator at Sonnet. The review: $0.00425 per planner call, $0.165 per
task, $2.97 for 18 tasks, $0.45 coordination, $3.45 in total, retries $0.594 at 10 % and
$1.188 at 20 %.
"""

from __future__ import annotations

import json

import pytest

from hybrid_tui.app.main import main


def _mission(root, *, mission_usd=25.0, retry_usd=2.0, planner="claude-haiku-4-5"):
    (root / "repo").mkdir(parents=True)
    (root / "repo" / "README.md").write_text("target\n")
    (root / "issues").mkdir()
    (root / "sis").mkdir()
    for i in range(1, 7):
        issue = f"{i:03d}-issue"
        (root / "issues" / f"{issue}.md").write_text(f"# Issue {i}\n\nDo thing {i}.\n")
        tasks = [
            {
                "task_id": f"i{i}-t{k}",
                "title": f"Task {k} of issue {i}",
                "estimated_duration_minutes": 10,
                "estimated_tokens": {"input": 15_000, "output": 8_000},
            }
            for k in range(1, 4)
        ]
        sis = {"sis_version": "1.0", "issue": {"id": issue, "title": f"Issue {i}"}, "tasks": tasks}
        (root / "sis" / f"{issue}.json").write_text(json.dumps(sis))
    (root / "mission.toml").write_text(
        '[mission]\nname = "review"\nrepo = "repo"\n\n'
        "[agents]\nplanners = 4\nmin_implementers = 4\nmax_implementers = 12\n\n"
        f'[models]\nplanner = "{planner}"\nimplementer = "claude-sonnet-4-5"\n'
        'coordinator = "claude-sonnet-4-5"\n\n'
        f"[budget]\nmission_usd = {mission_usd}\nretry_usd = {retry_usd}\n\n"
        '[pricing."claude-haiku-4-5"]\ninput = 0.25\noutput = 1.25\n'
    )
    return root


def _estimate(capsys, *args) -> tuple[int, str, str]:
    code = main(["estimate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_reproduces_the_reviews_cost_figures_to_the_cent(tmp_path, capsys):
    mission = _mission(tmp_path / "m")
    code, out, _ = _estimate(capsys, mission, "--json", "--failure-rate", "0.1")
    assert code == 0
    cost = json.loads(out)["cost"]
    assert cost["planning"]["per_call_usd"] == pytest.approx(0.00425)
    assert cost["planning"]["calls"] == 6
    assert round(cost["planning"]["usd"], 2) == 0.03
    assert cost["implementation"]["per_task_usd"] == pytest.approx(0.165)
    assert round(cost["implementation"]["usd"], 2) == 2.97
    assert round(cost["coordination"]["usd"], 2) == 0.45
    assert round(cost["total_usd"], 2) == 3.45
    assert round(cost["expected_retry_usd"], 3) == 0.594

    code, out, _ = _estimate(capsys, mission, "--json", "--failure-rate", "0.2")
    assert round(json.loads(out)["cost"]["expected_retry_usd"], 3) == 1.188


def test_text_forecast_shows_layers(tmp_path, capsys):
    code, out, _ = _estimate(capsys, _mission(tmp_path / "m"), "--agents", "4")
    assert code == 0
    assert "| planning (L2) | claude-haiku-4-5 | 6 | $0.00425 | $0.0255 |" in out
    assert "| implementation (L3) | claude-sonnet-4-5 | 18 | $0.165 | $2.97 |" in out
    assert "| coordination (L1) | claude-sonnet-4-5 | 1 |  | $0.45 |" in out
    assert "a real run spends $0.45 less than this total" in out  # our coordinator makes no model calls


def test_duration_and_utilisation_from_the_simulated_pool(tmp_path, capsys):
    # 18 independent 10-minute tasks + 30 s latency on 4 agents: 5 waves of 630 s, after
    # 2 planning waves (6 issues, 4 planners) of 30 s.
    code, out, _ = _estimate(capsys, _mission(tmp_path / "m"), "--json", "--agents", "4", "--backend-latency", "30")
    sim = json.loads(out)["simulation"]
    assert sim["planning_seconds"] == 60
    assert sim["wall_clock_seconds"] == pytest.approx(60 + 5 * 630)
    assert sim["utilisation"] == pytest.approx(18 * 630 / (4 * 5 * 630))
    assert sim["attempts"] == 18 and sim["tasks_done"] == 18
    assert sim["implementation_usd"] == pytest.approx(2.97)


def test_failures_cost_retries_in_the_simulation(tmp_path, capsys):
    # 20 % of 18 tasks = 4 tasks fail twice each: 8 retries at $0.165.
    code, out, _ = _estimate(capsys, _mission(tmp_path / "m"), "--json", "--agents", "8", "--failure-rate", "0.2")
    sim = json.loads(out)["simulation"]
    assert sim["attempts"] == 26 and sim["failed_attempts"] == 8
    assert sim["retry_usd"] == pytest.approx(8 * 0.165)
    assert sim["tasks_done"] == 18
    assert sim["auto_pauses"] >= 1  # 8 failures in 26 attempts is over the 15 % auto-pause


def test_small_budget_stops_dispatch_in_the_forecast(tmp_path, capsys):
    code, out, _ = _estimate(capsys, _mission(tmp_path / "m", mission_usd=1.0), "--json", "--agents", "4")
    sim = json.loads(out)["simulation"]
    assert sim["tasks_done"] == 6  # 6 x $0.165 = $0.99; a 7th would pass $1.00
    assert sim["implementation_usd"] <= 1.0
    assert "budget_exhausted" in sim["stopped_by"]


def test_sweep_covers_failure_rates_and_pool_sizes(tmp_path, capsys):
    code, out, _ = _estimate(capsys, _mission(tmp_path / "m"), "--json", "--sweep")
    rows = json.loads(out)["sweep"]
    assert [(r["failure_rate"], r["agents"]) for r in rows] == [
        (rate, n) for rate in (0.0, 0.1, 0.2, 0.3) for n in (4, 8, 12)
    ]
    walls = {(r["failure_rate"], r["agents"]): r["simulation"]["wall_clock_seconds"] for r in rows}
    assert walls[(0.0, 4)] > walls[(0.0, 8)] > walls[(0.0, 12)]  # 5, 3 and 2 waves of 10 minutes


def test_unknown_model_is_an_error(tmp_path, capsys):
    code, out, err = _estimate(capsys, _mission(tmp_path / "m", planner="claude-imaginary-9"))
    assert code == 2 and out == ""
    assert "claude-imaginary-9" in err and err.count("\n") == 1


def test_bad_arguments_and_invalid_mission(tmp_path, capsys):
    mission = _mission(tmp_path / "m")
    assert _estimate(capsys, mission, "--failure-rate", "1.5")[0] == 2
    (mission / "sis" / "001-issue.json").write_text("{ not json")
    code, out, err = _estimate(capsys, mission)
    assert code == 2 and "001-issue.json" in err


def test_estimate_applies_the_attempt_timeout_as_a_run_does(tmp_path, capsys):
    """Issue 17: a 71-minute task under a 30-minute attempt timeout never finishes in a run
    (timeout, retried twice, then failed): the forecast says so instead of counting it done."""
    mission = _mission(tmp_path / "m")
    sis_file = mission / "sis" / "001-issue.json"
    sis = json.loads(sis_file.read_text())
    sis["tasks"][0]["estimated_duration_minutes"] = 71
    sis_file.write_text(json.dumps(sis))
    toml = (mission / "mission.toml").read_text()
    (mission / "mission.toml").write_text(toml.replace("max_implementers = 12\n",
                                                       "max_implementers = 12\nattempt_timeout_seconds = 1800\n"))
    code, out, _ = _estimate(capsys, mission, "--json", "--agents", "4")
    assert code == 0
    sim = json.loads(out)["simulation"]
    assert sim["tasks_done"] == 17 and sim["tasks_not_done"] == 1
    assert sim["failed_attempts"] == 3 and sim["attempts"] == 18 + 2  # the timeout rule: 2 retries
    # Each stopped attempt paid for the 30 minutes it ran, not for 71.
    assert sim["implementation_usd"] == pytest.approx(17 * 0.165 + 3 * 0.165 * 1800 / (71 * 60))
    assert "i1-t1" in sim["stopped_by"] or sim["stopped_by"].startswith("attention")


def test_the_forecast_models_the_approval_gate(tmp_path, capsys):
    """web-18 with its CRITICAL task held for approval: approved at once it forecasts the same
    wall clock as without the gate; approved after 30 minutes, later (it is on a long path)."""
    import shutil
    from pathlib import Path

    mission = tmp_path / "web-18"
    shutil.copytree(Path(__file__).resolve().parents[2] / "sample_missions" / "web-18", mission)

    def wall_clock(*extra: str) -> float:
        assert main(["estimate", str(mission), "--json", *extra]) == 0
        simulation = json.loads(capsys.readouterr().out)["simulation"]
        assert simulation["tasks_not_done"] == 0
        return simulation["wall_clock_seconds"]

    ungated = wall_clock()
    with (mission / "mission.toml").open("a") as toml:
        toml.write('approve = ["CRITICAL"]\n')
    assert wall_clock() == ungated
    assert wall_clock("--approval-minutes", "30") > ungated
    assert main(["estimate", str(mission), "--approval-minutes", "-1"]) == 2


@pytest.mark.parametrize(("backend", "without_sis", "calls"), [
    ("replay", 0, 6),      # sim and replay replay a planning step per issue (the review's L2)
    ("anthropic", 0, 0),   # Claude uses every reviewed SIS as it is
    ("anthropic", 2, 2),   # ... and plans only the issues without one
    ("cli", 2, 0),         # an agent CLI has no planner
])
def test_planning_counts_the_issues_the_backend_will_plan(tmp_path, capsys, backend, without_sis, calls):
    """estimate charged a planner call for every issue whatever the backend: with reviewed
    SIS and the anthropic backend (which plans none of them) or the cli backend, money and
    minutes the run never spends."""
    mission = _mission(tmp_path / "m")
    toml = mission / "mission.toml"
    agents = f'backend = "{backend}"\n' + ('cli = "claude-code"\n' if backend == "cli" else "")
    toml.write_text(toml.read_text().replace("[agents]\n", "[agents]\n" + agents))
    for i in range(1, without_sis + 1):
        (mission / "issues" / f"{100 + i}-new.md").write_text(f"# New {i}\n\nNot planned yet.\n")
    code, out, _ = _estimate(capsys, mission, "--json", "--backend-latency", "30")
    assert code == 0
    result = json.loads(out)
    assert result["cost"]["planning"]["calls"] == calls
    assert result["cost"]["planning"]["usd"] == pytest.approx(calls * 0.00425)
    assert result["simulation"]["planning_seconds"] == -(-calls // 4) * 30  # 4 planners a wave
