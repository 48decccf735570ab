"""A real run (replay agents, git, validation subprocesses) keeps its time forecast and why
each ready task waits in the store: the lock holder while it holds the file, the events,
the report (forecast at the start vs actual), Prometheus' ``hybrid_eta_seconds``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from prometheus_client import generate_latest

from hybrid_tui.app.launch import start_run
from hybrid_tui.costs.report import build_report, render_markdown
from hybrid_tui.store import queries
from hybrid_tui.views.metrics import make_registry, parse_metrics
from hybrid_tui.vocabulary import EXIT_OK

from .helpers import drive, py, task, write_mission


def edit(path: str, old: str, new: str) -> dict:
    return {"op": "edit", "path": path, "old_string": old, "new_string": new}


def test_a_task_held_by_a_lock_says_which_task_holds_it_and_the_run_keeps_a_forecast(tmp_path: Path):
    flag = tmp_path / "release"
    wait_for_flag = py(f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.05)")
    mission = write_mission(
        tmp_path / "m",
        [
            # slow is on the longer path (after depends on it), so it takes shared.txt first.
            task("slow", ops=[edit("shared.txt", "a\n", "A\n")], checks=[wait_for_flag]),
            task("after", deps=["slow"]),
            task("other", ops=[edit("shared.txt", "b\n", "B\n")]),
        ],
        files={"shared.txt": "a\nb\n"},
        mission="\n[policies]\nfailure_rate_pause = 1.0\n",
    )
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    seen: dict = {}

    async def script() -> None:
        with anyio.fail_after(60):
            while True:
                waits = queries.wait_reasons(run_id)
                if "other" in waits and waits["other"].kind == "lock":
                    break
                await anyio.sleep(0.05)
        seen["wait"] = waits["other"]
        seen["report"] = build_report(run_id)
        with anyio.fail_after(60):
            while queries.latest_forecast(run_id) is None:
                await anyio.sleep(0.05)
        forecast = seen["forecast"] = queries.latest_forecast(run_id)
        one_second_later = make_registry(run_id, clock=lambda: forecast.ts + 1.0)
        seen["metrics"] = parse_metrics(generate_latest(one_second_later).decode())
        flag.write_text("go")

    try:
        assert drive(coordinator, script) == EXIT_OK
        wait = seen["wait"]
        assert (wait.holder, wait.message) == ("slow", "shared.txt held by task slow")
        report = seen["report"]
        assert {"task_id": "other", "kind": "lock", "message": "shared.txt held by task slow", "holder": "slow",
                "until": None} in report["waiting"]
        assert next(r for r in report["tasks"] if r["task_id"] == "other")["wait_reason"] == "shared.txt held by task slow"
        assert "| other | slow | shared.txt held by task slow |" in render_markdown(report)
        waiting_events = [e for e in queries.event_records(run_id) if e.kind == "task.waiting"]
        assert [(e.task_id, e.message) for e in waiting_events] == [("other", "shared.txt held by task slow")]
        forecast = seen["forecast"]
        eta = {dict(labels)["bound"]: value for (name, labels), value in seen["metrics"].items()
               if name == "hybrid_eta_seconds"}
        assert eta == pytest.approx({"expected": max(forecast.remaining_seconds - 1.0, 0.0),
                       "low": max(forecast.low_seconds - 1.0, 0.0), "high": max(forecast.high_seconds - 1.0, 0.0)})

        # After the run: the forecast made at the start next to the actual duration.
        start = queries.start_forecast(run_id)
        assert start is not None and start.tasks_left == 3 and start.low_seconds <= start.high_seconds
        final = build_report(run_id)
        tf = final["time_forecast"]
        assert tf["finished"] and tf["at_start"]["remaining_seconds"] == start.remaining_seconds
        run = queries.run_record(run_id)
        assert tf["actual_seconds"] == run.finished_at - start.ts
        assert "Forecast at the start" in render_markdown(final)
        assert final["waiting"] == []  # nothing waits once the run is done
        assert [e.kind for e in queries.event_records(run_id)].count("run.forecast") >= 1
    finally:
        store.close()


def _held_mission(root: Path, flag: Path) -> Path:
    """One task that runs until ``flag`` exists, and one after it."""
    wait_for_flag = py(f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.05)")
    return write_mission(root, [task("slow", checks=[wait_for_flag]), task("after", deps=["slow"])])


def _run_until_forecast(tmp_path: Path, *extra: str) -> tuple[list[str], int]:
    """``hybrid-tui run --headless`` as a real subprocess; the held task is released once the
    output shows a forecast. Returns every output line and the exit code."""
    flag = tmp_path / "release"
    mission = _held_mission(tmp_path / "m", flag)
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", *extra,
                             "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "forecast" in line and not flag.exists():
                flag.write_text("go")
        return lines, proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_headless_progress_lines_show_the_forecast_finish(tmp_path: Path):
    lines, code = _run_until_forecast(tmp_path)
    assert code == EXIT_OK
    shown = [line for line in lines if " forecast: finish ~" in line]
    assert shown and re.search(r"forecast: finish ~\d\d:\d\d:\d\d \(\d\d:\d\d:\d\d-\d\d:\d\d:\d\d\), 2 tasks left$",
                               shown[0])


def test_json_events_carry_the_forecast_and_the_summary_compares_it_with_the_actual(tmp_path: Path):
    lines, code = _run_until_forecast(tmp_path, "--json")
    assert code == EXIT_OK
    objects = [json.loads(line) for line in lines]
    forecasts = [o for o in objects if o["kind"] == "run.forecast"]
    assert forecasts[0]["fields"]["forecast"] == "start" and forecasts[0]["fields"]["tasks_left"] == 2
    first = forecasts[0]["fields"]
    assert first["low_seconds"] <= first["remaining_seconds"] <= first["high_seconds"]
    summary = objects[-1]
    assert summary["kind"] == "run.summary" and summary["forecast_at_start"]["finished"] is True
    assert summary["forecast_at_start"]["forecast_seconds"] == pytest.approx(first["remaining_seconds"], abs=1e-3)
    assert summary["forecast_at_start"]["actual_seconds"] > 0
