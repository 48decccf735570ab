"""`hybrid-tui report` on a real run folder (SQLite store populated in costs_run_fixture)."""

from __future__ import annotations

import json

import pytest
from costs_run_fixture import RUN_ID

from hybrid_tui.app.main import main


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The rows (without header and rule) of the first table under ``## heading``."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for line in section.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_markdown_report_by_run_id(runs_dir, capsys):
    assert main(["report", RUN_ID, "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Run report: demo ({RUN_ID})")
    assert "Spent: **$0.5793** of $1.0000 mission budget (58 %)" in out
    assert "retries $0.1200 of $0.5000 (24 %)" in out
    assert "Budget alert: mission budget past 50 %" in out
    assert "over budget" in out  # projected ~$1.05 against $1.00

    tasks = {row[0]: row for row in _table_rows(out, "Tasks")}
    assert tasks["T2"][2:7] == ["done", "2", "$0.3600", "$0.1650", "2.18"]
    assert tasks["T4"][2:5] == ["running", "1", "$0.0500"]
    assert tasks["T3"][3] == "0"

    phases = {row[0]: row[1] for row in _table_rows(out, "Cost breakdown")}
    assert phases == {"planning": "$0.0043", "implementing": "$0.4550", "retry": "$0.1200", "**total**": "$0.5793"}
    assert "| claude-sonnet-4-5 | 4 | 36,000 | 12,000 | 80,000 | 200,000 | $0.5750 |" in out

    assert _table_rows(out, "Failures by type") == [["validation_failed", "1", "$0.2400"]]
    assert _table_rows(out, "Estimate vs actual")[0][:4] == ["2", "$0.3300", "$0.5250", "1.59"]
    budget = out.split("## Budget events\n", 1)[1].split("\n## ", 1)[0]
    assert "alert.budget" in budget and "cannot cover 1 task(s): T3" in budget
    assert "pool.target" not in budget
    timeline = _table_rows(out, "Timeline")
    assert [row[2] for row in timeline] == ["run.started", "attempt.failed", "alert.budget", "alert.budget_exhausted", "pool.target"]
    assert timeline[1][0] == "+0:06:40"


def test_json_report_by_folder_path(runs_dir, capsys):
    assert main(["report", str(runs_dir / RUN_ID), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["id"] == RUN_ID
    assert data["spend"]["total"] == pytest.approx(0.57925)
    assert data["spend"]["by_phase"]["retry"] == pytest.approx(0.12)
    assert data["tasks_by_status"] == {"done": 2, "failed": 1, "pending": 1, "running": 1}
    assert data["projection"]["actual_to_estimate_ratio"] == pytest.approx(0.525 / 0.33)
    assert data["failures_by_type"]["validation_failed"]["attempts"] == 1
    assert [e["kind"] for e in data["budget_events"]] == ["alert.budget", "alert.budget_exhausted"]
    assert len(data["timeline"]) == 5


def test_unknown_run_is_one_line_error_exit_2(tmp_path, capsys):
    assert main(["report", "no-such-run", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-run" in err
    assert not (tmp_path / "no-such-run").exists()  # nothing created
