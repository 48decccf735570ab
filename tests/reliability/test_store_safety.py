"""The store under pressure: two coordinators on one run, a console writing controls while the
coordinator writes, and stores that are corrupt or from a newer hybrid-tui, refused by every
command that opens a run, with one clear line and the file left as it was.

Unit-level cousins: tests/store/test_store_db.py (open_store refusals, IMMEDIATE vs deferred race),
tests/runtime/test_operations.py (second coordinator against an in-process lock)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from hybrid_tui.store import models as m

from .helpers import cli, end_state, explain, py, read_store, task, write_mission


def _wait_for(predicate, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_second_coordinator_on_a_live_run_refuses_and_changes_nothing(tmp_path: Path):
    gate = tmp_path / "gate"
    wait_gate = py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    mission = write_mission(tmp_path / "m", [task("held", checks=[wait_gate], timeout=120)])
    runs = tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json",
                              "--runs-dir", str(runs)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for(lambda: runs.exists() and any(runs.rglob("state.db")), "the run's store")
        run_dir = next(runs.iterdir())

        def validating() -> bool:
            store, _ = read_store(run_dir)
            try:  # the store file exists a moment before the run's tasks are written into it
                held = m.Task.get_or_none(m.Task.task_id == "held")
                return held is not None and held.status == "validating"
            finally:
                store.close()

        _wait_for(validating, "the task to be validating")
        store, run = read_store(run_dir)
        last_seq, attempts = max(e.seq for e in m.Event.select(m.Event.seq)), m.Attempt.select().count()
        assert run.coordinator_pid == first.pid
        store.close()
        for args in (("resume", str(run_dir)), ("run", str(run_dir))):
            second = cli(*args, "--headless", "--json", cwd=tmp_path)
            assert second.returncode == 2, explain(second)
            assert second.stdout == ""
            assert second.stderr.strip().splitlines()[-1] == (
                f"hybrid-tui: error: run {run_dir.name} is already driven by another coordinator (pid {first.pid})"
            )
        store, run = read_store(run_dir)
        try:  # the refused coordinators wrote nothing (the live one may sample resources, refresh its
            # forecast or note a pause in its own running meanwhile)
            added = {e.kind for e in m.Event.select(m.Event.kind).where(m.Event.seq > last_seq)}
            assert added <= {"run.forecast", "run.suspended", "run.waiting", "task.waiting"}, added
            assert m.Attempt.select().count() == attempts
            assert run.coordinator_pid == first.pid and run.status == "running"
            assert m.Attempt.get(m.Attempt.task_id == "held").outcome == "running"
        finally:
            store.close()
        gate.write_text("open")
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert end_state(run_dir)["status"] == {"held": "done"}


def test_console_writing_controls_while_the_coordinator_writes_never_sees_database_is_locked(tmp_path: Path):
    """A sim run with the real console attached in this process, polling every 20 ms and writing
    a control row every 50 ms while the coordinator applies them and runs the mission."""
    from hybrid_tui.app.launch import open_run_store
    from hybrid_tui.tui import HybridApp

    mission = write_mission(tmp_path / "m", [task(f"t{i:02d}") for i in range(20)])
    runs = tmp_path / "runs"
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json", "--backend", "sim",
         "--no-git", "--pace", "0.02", "--agents", "4", "--runs-dir", str(runs)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(lambda: runs.exists() and any(runs.rglob("state.db")), "the store")
        store, run_id = open_run_store(next(runs.iterdir()))
        # Held paused from the start (an operator pause never ends a run): the coordinator lives
        # as long as the operator keeps pressing, however slowly the console starts.
        store.enqueue_control(run_id, "pause", source="test")
        problems: list[str] = []

        async def operate() -> int:
            app = HybridApp(store, run_id, poll_interval=0.02)
            app.animation_level = "none"
            original_notify = app.notify

            def notify(message, *args, **kwargs):
                if "locked" in str(message) or "unavailable" in str(message):
                    problems.append(str(message))
                return original_notify(message, *args, **kwargs)

            app.notify = notify
            sent = 0
            async with app.run_test(size=(160, 48)) as pilot:
                while sent < 60:
                    if sent == 30:  # let the coordinator write task transitions meanwhile
                        await pilot.press("p")
                    app.send("scale", "scale", size=2 + sent % 3)  # the console's one write path (keys call it)
                    sent += 1
                    await pilot.pause(0.05)
                    if app.poll_error:
                        problems.append(app.poll_error)
                while coordinator.poll() is None:  # resume until the mission is done
                    store.enqueue_control(run_id, "resume", source="test")
                    await pilot.pause(0.2)
            return sent

        sent = anyio.run(operate)
        assert coordinator.wait(timeout=120) == 0, coordinator.stderr.read()
        assert problems == []
        assert sent == 60
        controls = list(m.Control.select())
        assert sum(c.source == "tui" for c in controls) == 61  # every write of the console went through
        assert {c.status for c in controls} <= {"applied", "rejected", "pending"}
        assert {t.status for t in m.Task.select()} == {"done"}
        store.close()
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    mission = write_mission(base / "m", [task("only")])
    proc = cli("run", str(mission), "--headless", "--json", "--runs-dir", str(base / "runs"), cwd=base)
    assert proc.returncode == 0, explain(proc)
    return next((base / "runs").iterdir())


def _corrupt(db: Path) -> str:
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xde\xad\xbe\xef" * ((4096 - 100) // 4)  # the schema page
    db.write_bytes(bytes(data))
    return "corrupt"


def _newer(db: Path) -> str:
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = version + 100")
    con.commit()
    con.close()
    return "newer than this hybrid-tui supports"


def _not_a_database(db: Path) -> str:
    db.write_bytes(b"this is not sqlite at all\n" * 200)
    return "not a database"


@pytest.mark.parametrize("damage", [_corrupt, _newer, _not_a_database], ids=["corrupt", "newer", "not-sqlite"])
@pytest.mark.parametrize("command", [("resume", "--headless"), ("run", "--headless"), ("attach",), ("report",)])
def test_a_bad_store_is_refused_with_one_clear_line_and_left_untouched(tmp_path: Path, finished_run: Path, damage,
                                                                         command):
    run_dir = tmp_path / "run"
    import shutil

    shutil.copytree(finished_run, run_dir)
    for side in ("state.db-wal", "state.db-shm"):
        (run_dir / side).unlink(missing_ok=True)
    words = damage(run_dir / "state.db")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    proc = cli(command[0], str(run_dir), *command[1:], cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("hybrid-tui: error: ") and "state.db: cannot open the store:" in lines[0], lines[0]
    assert words in lines[0], lines[0]
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == before  # nothing written, not even a WAL
