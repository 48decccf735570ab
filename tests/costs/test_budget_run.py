"""A mission budget too small for the mission, end to end: a real headless run of the quickstart
(real git, real validation subprocesses) stops dispatching before the budget is exceeded, says so
in events, in the console and in the report, and the operator can raise the budget and carry on.
Also: an attempt that reaches its own cap stops (replay and sim backends).

The budget is computed from the SIS estimates and the pricing table, so it holds whatever the
shipped prices are: it covers the three cheapest first-wave tasks, well under the whole mission.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_tui.core.tiering import select_model
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.loader import load_mission

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "sample_missions" / "quickstart"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "user", "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "user@example.com",
}
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


# ------------------------------------------------------------------ helpers

def hybrid(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), **GIT_ENV}  # HOME: no user pricing file
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def expected_costs(mission_dir: Path) -> dict[str, float]:
    """What the core expects each task to cost (SIS token estimate x the task's model price)."""
    mission = load_mission(mission_dir)
    table = PricingTable.load(mission.config.pricing or None, user_config=mission_dir / "no-user-pricing.toml")
    return {t.task_id: table.expected_task_cost(t, select_model(t, mission.config.models)) for t in mission.tasks}


def set_mission_toml(mission_dir: Path, **budget: float) -> None:
    text = (mission_dir / "mission.toml").read_text()
    for key, value in budget.items():
        lines = [f"{key} = {value!r}" if line.startswith(f"{key} =") else line for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    (mission_dir / "mission.toml").write_text(text)


def rows(db: Path, sql: str, *params) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------ the budget-limited run

@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """The quickstart with a mission budget for about three of its eight tasks, run headless."""
    root = tmp_path_factory.mktemp("budget-run")
    mission = root / "quickstart"
    shutil.copytree(QUICKSTART, mission, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", ".hybrid"))
    git(mission / "repo", "init", "-q", "-b", "main")
    git(mission / "repo", "add", "-A")
    git(mission / "repo", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    expected = expected_costs(mission)
    first_wave = sorted(cost for tid, cost in expected.items() if not load_mission(mission).task(tid).dependencies)
    budget = round(sum(first_wave[:3]), 4)
    assert budget < sum(expected.values()) / 2  # far from enough for the mission
    set_mission_toml(mission, mission_usd=budget)
    runs = root / "runs"
    proc = hybrid("run", str(mission), "--headless", "--json", "--runs-dir", str(runs), cwd=root, home=root)
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return {"root": root, "mission": mission, "runs": runs, "run_dir": run_dir, "run_id": run_dir.name,
            "db": run_dir / "state.db", "proc": proc, "budget": budget, "expected": expected}


@pytest.mark.slow
def test_dispatching_stops_before_the_mission_budget_is_exceeded(budget_run):
    proc, db, budget, expected = budget_run["proc"], budget_run["db"], budget_run["budget"], budget_run["expected"]
    # Budget exhausted = tasks failed for lack of money: the run finished with failures (exit 1),
    # not a paused run that `resume` alone would carry on (exit 3).
    assert proc.returncode == EXIT_FAILED, proc.stderr[-3000:]
    spent = rows(db, "SELECT COALESCE(SUM(cost_usd), 0) AS s FROM attempt")[0]["s"]
    assert 0 < spent <= budget
    (run,) = rows(db, "SELECT status, mission_budget_usd FROM run")
    assert (run["status"], run["mission_budget_usd"]) == ("finished", budget)

    tasks = {r["task_id"]: r for r in rows(db, "SELECT * FROM task")}
    attempted = {r["task_id"] for r in rows(db, "SELECT DISTINCT task_id FROM attempt WHERE phase != 'planning'")}
    refused = {tid for tid, t in tasks.items() if t["failure_type"] == "budget_exhausted"}
    assert refused, "no task was refused for lack of budget"
    assert any(t["status"] == "done" for t in tasks.values())
    for tid in refused:  # refused at dispatch: never started, failed, with the reason in the row
        assert tid not in attempted
        assert tasks[tid]["status"] == "failed"
        assert tasks[tid]["attention_reason"].startswith("budget_exhausted: needs $")
    for tid, t in tasks.items():  # nothing else went wrong: done, refused, or blocked behind a refusal
        if t["status"] == "blocked":
            assert tid not in attempted and t["attention_reason"].startswith("dependency ")
        else:
            assert t["status"] == "done" or tid in refused, (tid, t["status"], t["attention_reason"])
    assert any(t["status"] == "blocked" for t in tasks.values())

    # No attempt started that the budget (minus what had been spent by then) could not cover.
    attempts = rows(db, "SELECT task_id, started_at, finished_at, cost_usd FROM attempt WHERE phase != 'planning'")
    for a in attempts:
        spent_before = sum(b["cost_usd"] for b in attempts if b["finished_at"] is not None
                           and b["finished_at"] < a["started_at"])
        assert spent_before + expected[a["task_id"]] <= budget + 1e-9, a["task_id"]


@pytest.mark.slow
def test_the_budget_alerts_are_events_in_the_store_and_in_the_json_output(budget_run):
    db, proc, budget = budget_run["db"], budget_run["proc"], budget_run["budget"]
    events = rows(db, "SELECT seq, kind, message, data_json FROM event WHERE kind LIKE 'alert.budget%' ORDER BY seq")
    thresholds = [json.loads(e["data_json"])["data"]["threshold"] for e in events if e["kind"] == "alert.budget"]
    assert thresholds[:2] == [0.5, 0.75]  # the ladder, in order, each once
    assert len(thresholds) == len(set(thresholds))
    exhausted = [e for e in events if e["kind"] == "alert.budget_exhausted"]
    assert exhausted
    named = {tid for e in exhausted for tid in json.loads(e["data_json"])["data"]["tasks"]}
    refused = {r["task_id"] for r in rows(db, "SELECT task_id FROM task WHERE failure_type = 'budget_exhausted'")}
    assert named == refused
    for e in exhausted:
        assert "mission budget cannot cover" in e["message"]
        assert json.loads(e["data_json"])["data"]["spent_usd"] <= budget

    out = json_lines(proc.stdout)
    shown = {(o["seq"], o["kind"]) for o in out if str(o.get("kind", "")).startswith("alert.budget")}
    assert shown == {(e["seq"], e["kind"]) for e in events}
    summary = out[-1]
    assert summary["kind"] == "run.summary" and summary["exit_code"] == EXIT_FAILED
    assert summary["tasks"]["failed"] == len(refused)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def screen_text(app) -> str:
    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True,
                      record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


@pytest.mark.slow
@pytest.mark.anyio
async def test_the_console_shows_the_budget_stop_and_the_refused_tasks(budget_run):
    from hybrid_tui.store.db import open_store
    from hybrid_tui.tui import HybridApp

    db = budget_run["db"]
    (run,) = rows(db, "SELECT finished_at FROM run")
    refused = sorted(r["task_id"] for r in rows(db, "SELECT task_id FROM task WHERE failure_type = 'budget_exhausted'"))
    store = open_store(db, create=False)
    try:
        app = HybridApp(store, budget_run["run_id"], clock=lambda: run["finished_at"] + 1)
        app.animation_level = "none"
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.pause()
            dashboard = screen_text(app)
            assert f"budget exhausted: {len(refused)} task(s) stopped" in dashboard
            assert f"/${budget_run['budget']:.2f}" in dashboard  # spend against the budget
            assert "alert.budget_exhausted" in dashboard  # the event pane, newest last
            await pilot.press("a")
            await pilot.pause()
            attention = screen_text(app)
            lines = {tid: next((line for line in attention.splitlines() if line.strip().startswith(tid[:14])), "")
                     for tid in refused}
            for tid, line in lines.items():
                assert "failed" in line and "budget_exhausted" in line, (tid, line)
                assert "needs $" in line, line
    finally:
        store.close()


@pytest.mark.slow
def test_the_report_shows_the_budget_events_and_the_stopped_tasks(budget_run):
    root, runs, run_id, db = budget_run["root"], budget_run["runs"], budget_run["run_id"], budget_run["db"]
    refused = sorted(r["task_id"] for r in rows(db, "SELECT task_id FROM task WHERE failure_type = 'budget_exhausted'"))

    md = hybrid("report", run_id, "--runs-dir", str(runs), cwd=root, home=root)
    assert md.returncode == 0, md.stderr
    summary = md.stdout.split("## Cost breakdown")[0]
    assert f"**Stopped by the budget**: {len(refused)} task(s)" in summary
    assert all(tid in summary for tid in refused)
    budget_section = md.stdout.split("## Budget events")[1].split("## Timeline")[0]
    assert "**alert.budget** mission budget" in budget_section and "(50% reached)" in budget_section
    assert "**alert.budget_exhausted** mission budget cannot cover" in budget_section
    for tid in refused:
        assert f"{tid}: ready -> failed: budget_exhausted" in budget_section
        assert any(line.startswith(f"| {tid} |") and line.rstrip().endswith("| budget_exhausted |")
                   for line in md.stdout.splitlines()), tid

    js = hybrid("report", run_id, "--runs-dir", str(runs), "--json", cwd=root, home=root)
    assert js.returncode == 0, js.stderr
    report = json.loads(js.stdout)
    assert sorted(report["budget_stopped_tasks"]) == refused
    kinds = [e["kind"] for e in report["budget_events"]]
    assert "alert.budget_exhausted" in kinds and "alert.budget" in kinds
    by_task = {t["task_id"]: t for t in report["tasks"]}
    assert all(by_task[tid]["attempts"] == 0 and by_task[tid]["failure_type"] == "budget_exhausted" for tid in refused)
    assert report["spend"]["total"] <= budget_run["budget"]


# ------------------------------------------------------------------ operator recovery

@pytest.mark.slow
def test_bad_budget_commands_are_one_line_and_change_nothing(budget_run):
    root, runs, run_id, db = budget_run["root"], budget_run["runs"], budget_run["run_id"], budget_run["db"]
    before = rows(db, "SELECT COUNT(*) AS n FROM control")[0]["n"]
    for args, needle in (
        (["--mission-usd", "-1"], "--mission-usd"),
        (["--retry-usd", "0"], "--retry-usd"),
        (["--mission-usd", "nan"], "--mission-usd"),
        ([], "--mission-usd and/or --retry-usd"),
    ):
        proc = hybrid("budget", run_id, *args, "--runs-dir", str(runs), cwd=root, home=root)
        assert proc.returncode == EXIT_BAD_INPUT, (args, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr
    proc = hybrid("budget", "no-such-run", "--mission-usd", "1", "--runs-dir", str(runs), cwd=root, home=root)
    assert proc.returncode == EXIT_BAD_INPUT and len(proc.stderr.strip().splitlines()) == 1
    assert rows(db, "SELECT COUNT(*) AS n FROM control")[0]["n"] == before


@pytest.mark.slow
def test_raising_the_budget_then_retrying_finishes_the_mission(budget_run, tmp_path):
    # On a copy: the other tests read the budget-limited run as it ended.
    root = tmp_path
    runs = root / "runs"
    shutil.copytree(budget_run["runs"], runs)
    run_id = budget_run["run_id"]
    db = runs / run_id / "state.db"
    refused = sorted(r["task_id"] for r in rows(db, "SELECT task_id FROM task WHERE failure_type = 'budget_exhausted'"))
    # The run folder names its mission and repository by absolute path: both are still in place.

    proc = hybrid("budget", run_id, "--mission-usd", "1.0", "--runs-dir", str(runs), cwd=root, home=root)
    assert proc.returncode == 0, proc.stderr
    for tid in refused:
        assert hybrid("retry", run_id, tid, "--runs-dir", str(runs), cwd=root, home=root).returncode == 0
    proc = hybrid("resume", run_id, "--headless", "--json", "--runs-dir", str(runs), cwd=root, home=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    controls = rows(db, "SELECT command, status, result FROM control ORDER BY id")
    assert [(c["command"], c["status"]) for c in controls] == [("budget", "applied")] + [("retry", "applied")] * len(refused)
    assert controls[0]["result"].startswith("mission budget $1.00")
    (run,) = rows(db, "SELECT status, mission_budget_usd FROM run")
    assert (run["status"], run["mission_budget_usd"]) == ("finished", 1.0)
    assert {r["status"] for r in rows(db, "SELECT status FROM task")} == {"done"}
    assert rows(db, "SELECT COUNT(*) AS n FROM event WHERE kind = 'budget.changed'")[0]["n"] == 1
    spent = rows(db, "SELECT SUM(cost_usd) AS s FROM attempt")[0]["s"]
    assert budget_run["budget"] < spent <= 1.0
    # One commit per task on the mission branch, the refused ones included.
    (branch,) = rows(db, "SELECT mission_branch FROM run")
    log = git(budget_run["mission"] / "repo", "log", "--format=%(trailers:key=Hybrid-Task,valueonly)",
              f"main..{branch['mission_branch']}")
    assert sorted(line.strip() for line in log.splitlines() if line.strip()) == sorted(
        r["task_id"] for r in rows(db, "SELECT task_id FROM task"))


# ------------------------------------------------------------------ an attempt's own cap

def cap_mission(root: Path) -> Path:
    """Two independent tasks on a git repo: ``small`` (cheap) and ``big`` (about 10x its cost)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("demo\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    check = f"{sys.executable} -c 'import pathlib; assert pathlib.Path(\"{{}}.txt\").exists()'"
    tasks = [
        {"task_id": tid, "title": f"Task {tid}", "estimated_duration_minutes": 1,
         "estimated_tokens": tokens,
         "file_operations": [{"op": "create", "path": f"{tid}.txt", "content": f"{tid}\n"}],
         "validation": {"commands": [check.format(tid)]}}
        for tid, tokens in (("small", {"input": 2000, "output": 500}), ("big", {"input": 20000, "output": 5000}))
    ]
    (root / "issues").mkdir()
    (root / "issues" / "001-work.md").write_text("# Work\n\nDo the work.\n")
    (root / "sis").mkdir()
    (root / "sis" / "001-work.json").write_text(json.dumps(
        {"sis_version": "1.0", "issue": {"id": "001-work", "title": "Work"}, "tasks": tasks}))
    (root / "replay").mkdir()
    (root / "mission.toml").write_text(
        '[mission]\nname = "caps"\nrepo = "repo"\n\n[agents]\nmin_implementers = 2\nmax_implementers = 2\n')
    return root


def finished_run(root: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    runs = root / "runs"
    proc = hybrid("run", str(root / "mission"), "--headless", "--json", "--runs-dir", str(runs), *extra,
                  cwd=root, home=root)
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return proc, run_dir / "state.db"


@pytest.mark.parametrize("backend", ["replay", "sim"])
def test_an_attempt_that_reaches_its_own_cap_stops(tmp_path, backend):
    mission = cap_mission(tmp_path / "mission")
    costs = expected_costs(mission)
    cap = round((costs["small"] * 1.5 + costs["big"] * 0.5) / 2, 6)  # sim varies usage by +-30 %
    assert costs["small"] * 1.3 < cap < costs["big"] * 0.7
    (mission / "mission.toml").write_text((mission / "mission.toml").read_text().replace(
        "max_implementers = 2\n", f"max_implementers = 2\nmax_cost_per_attempt = {cap}\n"))
    proc, db = finished_run(tmp_path, "--backend", backend)
    assert proc.returncode == EXIT_FAILED, proc.stderr[-2000:]
    tasks = {r["task_id"]: r for r in rows(db, "SELECT * FROM task")}
    assert tasks["small"]["status"] == "done"
    assert (tasks["big"]["status"], tasks["big"]["failure_type"]) == ("failed", "budget_exhausted")
    assert "cost limit" in tasks["big"]["attention_reason"]
    (big,) = rows(db, "SELECT outcome, failure_type, cost_usd FROM attempt WHERE task_id = 'big'")
    assert (big["outcome"], big["failure_type"]) == ("failed", "budget_exhausted")
    assert 0 < big["cost_usd"] <= cap  # charged what it spent up to its cap, not its full cost
    # It stopped before doing its work: nothing of it reached the mission branch.
    (run,) = rows(db, "SELECT mission_branch FROM run")
    files = git(mission / "repo", "ls-tree", "--name-only", run["mission_branch"]).split()
    assert "small.txt" in files and "big.txt" not in files


def test_an_attempt_costing_more_than_its_estimate_is_held_to_the_mission_budget(tmp_path):
    # A recorded attempt that cost 20x its estimate, on a budget that covers its estimate with
    # room to spare: dispatched (the estimate fits), then stopped when the budget runs out.
    mission = cap_mission(tmp_path / "mission")
    costs = expected_costs(mission)
    budget = round((costs["small"] + costs["big"]) * 1.5, 6)
    recording = [{"file_operations": [{"op": "create", "path": "big.txt", "content": "big\n"}],
                  "cost_usd": costs["big"] * 20}]
    (mission / "replay" / "big.json").write_text(json.dumps({"task_id": "big", "attempts": recording}))
    (mission / "mission.toml").write_text((mission / "mission.toml").read_text()
                                          + f"\n[budget]\nmission_usd = {budget}\n")
    proc, db = finished_run(tmp_path)
    assert proc.returncode == EXIT_FAILED, proc.stderr[-2000:]
    spent = rows(db, "SELECT SUM(cost_usd) AS s FROM attempt")[0]["s"]
    assert spent <= budget + 1e-9
    (big,) = rows(db, "SELECT failure_type, cost_usd FROM attempt WHERE task_id = 'big'")
    assert big["failure_type"] == "budget_exhausted" and big["cost_usd"] > costs["big"]
