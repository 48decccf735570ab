"""A task's own failures do not trip the backend's circuit breaker, and a suspended
coordinator does not time out work that could not run (issue 23, item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import NO_AUTO_PAUSE, attempts_of, cli, explain, read_store, task, write_mission

from hybrid_tui.store import models as m


def test_validation_timeouts_do_not_open_the_breaker_so_healthy_tasks_are_not_held(tmp_path: Path):
    hanging = [task(f"hang{i}", checks=["sleep 30"], timeout=0.3) for i in range(3)]  # 3 attempts each: 9 timeouts
    healthy = [task(f"ok{i}", checks=["true"]) for i in range(3)]
    mission = write_mission(tmp_path / "m", hanging + healthy,
                            mission=NO_AUTO_PAUSE + "breaker_reset_seconds = 3000\n"
                            + '\n[policies.retries.timeout]\nmax_retries = 2\nbackoff = "immediate"\n')
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)  # the hanging ones failed; the run did not wait 3000 s
    store, _ = read_store(next(runs.iterdir()))
    try:
        assert [a.failure_type for a in attempts_of("hang0")] == ["timeout"] * 3
        assert {t.task_id: t.status for t in m.Task.select()} == {
            **{f"hang{i}": "failed" for i in range(3)}, **{f"ok{i}": "done" for i in range(3)}}
        assert not [e.message for e in m.Event.select() if "breaker" in e.kind or "circuit" in e.message]
    finally:
        store.close()


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_sigstopped_coordinator_does_not_time_out_attempts_that_could_not_run(tmp_path: Path):
    # Each attempt's validation takes 3 s; the attempt limit is 5 s; the coordinator is
    # stopped for 8 s while they validate. Counted on the clock, every attempt would be past
    # its limit when the coordinator wakes; counted in time it ran, none is.
    tasks = [task(f"t{i}", checks=["sleep 3"]) for i in range(3)]
    mission = write_mission(tmp_path / "m", tasks, mission=NO_AUTO_PAUSE)
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text().replace("[agents]\n", "[agents]\nattempt_timeout_seconds = 5\n"))
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYBRID_TUI_CRASH_AT"}
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--agents", "3",
                             "--runs-dir", str(runs)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # a safety net, not a measure
        while time.monotonic() < deadline:
            run_dirs = [p for p in runs.iterdir() if p.is_dir()]
            validating = {e.get("task") for e in (_events(run_dirs[0]) if run_dirs else [])
                          if e.get("kind") == "task.status" and "-> validating" in e.get("message", "")}
            if len(validating) == 3 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its attempts were validating"
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(8)
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{out[-3000:]}\n{err[-3000:]}"
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    store, _ = read_store(run_dir)
    try:
        assert {a.task_id: a.outcome for a in m.Attempt.select() if a.phase != "planning"} == {
            f"t{i}": "succeeded" for i in range(3)}
    finally:
        store.close()
    assert any(e["kind"] == "run.suspended" for e in _events(run_dir))
