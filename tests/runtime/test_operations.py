"""The coordinator in process on small missions: timeouts, escalation, rollback, pause and
resume and cancel through the Control table, and the run lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import anyio

from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK, EXIT_STOPPED
from hybrid_tui.app.launch import start_run
from hybrid_tui.store import models as m

from .helpers import branch_commits, drive, git, hybrid, py, task, write_mission

# Test missions fail on purpose: never let the failure-rate auto-pause end them early.
NO_AUTO_PAUSE = "\n[policies]\nfailure_rate_pause = 1.0\n"


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(60):
        while not predicate():
            await anyio.sleep(0.05)


def status(task_id: str) -> str:
    return m.Task.get(m.Task.task_id == task_id).status


def control_done(control_id: int) -> bool:
    return m.Control.get_by_id(control_id).status != "pending"


def start(mission: Path, tmp_path: Path, **options):
    return start_run(mission, tmp_path / "runs", **options)


def test_hanging_validation_times_out_and_escalates(tmp_path: Path):
    hang = py("import time; time.sleep(120)")
    mission = write_mission(
        tmp_path / "m",
        [task("hangs", checks=[hang], timeout=0.5), task("after", deps=["hangs"])],
        mission=NO_AUTO_PAUSE,
    )
    store, run_id, coordinator = start(mission, tmp_path)
    try:
        assert drive(coordinator) == EXIT_FAILED
        attempts = list(m.Attempt.select().where(m.Attempt.task_id == "hangs").order_by(m.Attempt.number))
        assert [a.failure_type for a in attempts] == ["timeout"] * 3  # 2 retries, then attention
        assert status("hangs") == "failed"
        assert "timeout" in m.Task.get(m.Task.task_id == "hangs").attention_reason
        assert status("after") == "blocked"
        assert m.Attempt.select().where(m.Attempt.task_id == "after").count() == 0
    finally:
        store.close()


def test_validation_that_always_fails_escalates_and_blocks_dependents(tmp_path: Path):
    mission = write_mission(
        tmp_path / "m",
        [
            task("broken", checks=[py("import sys; print('still broken'); sys.exit(3)")]),
            task("child", deps=["broken"]),
            task("grandchild", deps=["child"]),
            task("independent"),
        ],
        mission=NO_AUTO_PAUSE,
    )
    store, run_id, coordinator = start(mission, tmp_path)
    try:
        assert drive(coordinator) == EXIT_FAILED
        attempts = list(m.Attempt.select().where(m.Attempt.task_id == "broken").order_by(m.Attempt.number))
        assert [a.outcome for a in attempts] == ["failed"] * 3
        assert {a.failure_type for a in attempts} == {"validation_failed"}
        # Each retry was told why the previous attempt failed.
        assert attempts[0].feedback == ""
        assert all("still broken" in a.feedback for a in attempts[1:])
        assert all(Path(a.log_path).read_text().count("still broken") for a in attempts)
        assert status("broken") == "failed"
        assert status("child") == status("grandchild") == "blocked"
        assert status("independent") == "done"
        run = m.Run.get_by_id(run_id)
        commits = branch_commits(Path(run.repo_path), run.mission_branch)
        assert [c["task"] for c in commits] == ["independent"]
    finally:
        store.close()


def test_rollback_succeeds_and_rollback_is_refused_when_a_later_task_touched_its_files(tmp_path: Path):
    mission = write_mission(
        tmp_path / "m",
        [
            task("a", ops=[{"op": "create", "path": "a.txt", "content": "a\n"}]),
            task("b", ops=[{"op": "create", "path": "b.txt", "content": "b\n"}]),
            task("c", deps=["a"], ops=[{"op": "edit", "path": "a.txt", "old_string": "a\n", "new_string": "a+c\n"}]),
        ],
    )
    store, run_id, coordinator = start(mission, tmp_path)
    coordinator.exit_when_finished = False
    run = m.Run.get_by_id(run_id)
    repo = Path(run.repo_path)

    async def script() -> None:
        await wait_for(lambda: all(t.status == "done" for t in m.Task.select()), "all done")
        ok = store.enqueue_control(run_id, "rollback", source="test", task_id="b")
        refused = store.enqueue_control(run_id, "rollback", source="test", task_id="a")
        await wait_for(lambda: control_done(ok) and control_done(refused), "controls applied")
        coordinator.request_stop("test over")

    try:
        # Stopped once every task had finished: the run stays finished with a headless run's exit
        # code (issue 21: q on a finished run was "stopped (operator)", exit 3).
        assert drive(coordinator, script) == EXIT_OK
        ok_row, refused_row = m.Control.select().order_by(m.Control.id)
        assert ok_row.status == "applied"
        assert status("b") == "rolled_back"
        revert = m.IntegrationCommit.get(m.IntegrationCommit.task_id == "b").reverted_by
        assert revert and git(repo, "rev-parse", run.mission_branch).strip() == revert
        tree = git(repo, "ls-tree", "--name-only", run.mission_branch).split()
        assert "b.txt" not in tree and "a.txt" in tree

        assert refused_row.status == "rejected"
        assert "c" in refused_row.result and "a.txt" in refused_row.result
        a = m.Task.get(m.Task.task_id == "a")
        assert a.status == "done" and "refused" in a.attention_reason
        assert git(repo, "show", f"{run.mission_branch}:a.txt") == "a+c\n"
    finally:
        store.close()


def test_pause_and_resume_through_the_control_table(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task(f"t{i}") for i in range(4)])
    store, run_id, coordinator = start(mission, tmp_path, agents=1)
    paused = store.enqueue_control(run_id, "pause", source="test", reason="hold on")

    async def script() -> None:
        await wait_for(lambda: control_done(paused), "pause applied")
        # Controls are applied before dispatching: while paused nothing starts.
        for _ in range(10):
            await anyio.sleep(coordinator.poll_interval)
            assert m.Attempt.select().where(m.Attempt.phase != "planning").count() == 0
        assert m.Run.get_by_id(run_id).status == "paused"
        assert m.Run.get_by_id(run_id).pause_reason == "hold on"
        store.enqueue_control(run_id, "resume", source="test")

    try:
        assert drive(coordinator, script) == EXIT_OK
        assert {t.status for t in m.Task.select()} == {"done"}
        kinds = [e.kind for e in m.Event.select().order_by(m.Event.seq)]
        assert kinds.index("run.paused") < kinds.index("run.resumed") < kinds.index("attempt.started")
        assert [c.status for c in m.Control.select()] == ["applied", "applied"]
    finally:
        store.close()


def test_cancel_dependents_while_they_run(tmp_path: Path):
    gate = tmp_path / "never"  # the dependent's validation waits for a file nobody creates
    wait_gate = py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    mission = write_mission(
        tmp_path / "m",
        [
            task("root"),
            task("child", deps=["root"], checks=[wait_gate], timeout=120),
            task("grandchild", deps=["child"]),
        ],
        mission=NO_AUTO_PAUSE,
    )
    store, run_id, coordinator = start(mission, tmp_path)

    async def script() -> None:
        await wait_for(lambda: status("child") == "validating", "child validating")
        store.enqueue_control(run_id, "cancel_dependents", source="test", task_id="root")

    try:
        assert drive(coordinator, script) == EXIT_FAILED
        assert status("root") == "done"
        assert status("child") == "cancelled" and status("grandchild") == "cancelled"
        attempt = m.Attempt.get(m.Attempt.task_id == "child")
        assert attempt.outcome == "cancelled"
        assert m.Attempt.select().where(m.Attempt.task_id == "grandchild").count() == 0
        control = m.Control.get()
        assert control.status == "applied" and "child" in control.result
        run = m.Run.get_by_id(run_id)
        assert [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)] == ["root"]
    finally:
        store.close()


def test_cancel_a_validating_task_stops_it_and_blocks_its_dependents(tmp_path: Path):
    """The console's bulk cancel (C) sends one ``cancel`` control per marked task."""
    gate = tmp_path / "never"  # the task's validation waits for a file nobody creates
    wait_gate = py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    mission = write_mission(
        tmp_path / "m",
        [task("root"), task("child", deps=["root"], checks=[wait_gate], timeout=120), task("grandchild", deps=["child"])],
        mission=NO_AUTO_PAUSE,
    )
    store, run_id, coordinator = start(mission, tmp_path)
    controls: list[int] = []

    async def script() -> None:
        await wait_for(lambda: status("child") == "validating", "child validating")
        controls.append(store.enqueue_control(run_id, "cancel", source="test", task_id="child"))
        controls.append(store.enqueue_control(run_id, "cancel", source="test", task_id="root"))  # done: refused

    try:
        assert drive(coordinator, script) == EXIT_FAILED
        assert status("root") == "done"
        assert status("child") == "cancelled" and status("grandchild") == "blocked"
        assert m.Attempt.get(m.Attempt.task_id == "child").outcome == "cancelled"
        assert m.Attempt.select().where(m.Attempt.task_id == "grandchild").count() == 0
        cancel_child, cancel_root = (m.Control.get_by_id(c) for c in controls)
        assert cancel_child.status == "applied" and "grandchild" in cancel_child.result
        assert cancel_root.status == "rejected" and "root is done" in cancel_root.result
        run = m.Run.get_by_id(run_id)
        assert [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)] == ["root"]
    finally:
        store.close()


def test_unknown_task_in_a_control_is_rejected(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("only")])
    store, run_id, coordinator = start(mission, tmp_path)
    bad = store.enqueue_control(run_id, "retry", source="test", task_id="nope")
    try:
        assert drive(coordinator) == EXIT_OK
        row = m.Control.get_by_id(bad)
        assert row.status == "rejected" and "nope" in row.result
    finally:
        store.close()


def test_a_second_coordinator_on_the_same_run_refuses(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("only")])
    store, run_id, coordinator = start(mission, tmp_path)
    coordinator.lock.acquire()
    try:
        proc = hybrid("resume", str(coordinator.run_dir), "--headless", cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith("hybrid-tui: error:")
        assert "already driven by another coordinator" in proc.stderr
        assert proc.stdout == ""
        # Nothing was touched: the task never started.
        assert status("only") == "ready"
        assert m.Attempt.select().where(m.Attempt.phase != "planning").count() == 0
    finally:
        coordinator.lock.release()
        store.close()


def test_sim_backend_without_git_runs_and_writes_the_store(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task(f"t{i}", deps=[f"t{i - 1}"] if i else []) for i in range(6)])
    runs = tmp_path / "runs"
    proc = hybrid("run", str(mission), "--headless", "--json", "--backend", "sim", "--no-git", "--runs-dir", str(runs),
                  cwd=tmp_path, check_exit=0)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    done = [e["task"] for e in events if e["kind"] == "task.status" and e["fields"]["new"] == "done"]
    assert done == [f"t{i}" for i in range(6)]  # the chain's order held
    run_dir = next(runs.iterdir())
    assert not (run_dir / "worktrees").exists() or not any((run_dir / "worktrees").iterdir())
    # The repository was not touched: no mission branch.
    assert git(mission / "repo", "branch", "--list").split() == ["*", "main"]


def test_sigterm_stops_headless_run_with_exit_3_and_resume_finishes_it(tmp_path: Path):
    import signal
    import subprocess
    import sys

    gate = tmp_path / "gate"
    wait_gate = py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    mission = write_mission(tmp_path / "m", [task("first"), task("gated", deps=["first"], checks=[wait_gate], timeout=120)])
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json", "--runs-dir", str(runs)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("task") == "gated" and event["kind"] == "task.status" and event["fields"]["new"] == "validating":
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_STOPPED
    assert json.loads(rest.splitlines()[-1])["kind"] == "run.summary"
    run_dir = next(runs.iterdir())
    from .helpers import read_store

    store, run = read_store(run_dir)
    try:
        assert run.status == "stopped"
        assert m.Attempt.get(m.Attempt.task_id == "gated").outcome == "interrupted"
        assert status("gated") == "ready" and status("first") == "done"
        assert m.FileLock.select().count() == 0
    finally:
        store.close()
    gate.write_text("open")
    hybrid("resume", str(run_dir), "--headless", cwd=tmp_path, check_exit=0)
    store, run = read_store(run_dir)
    try:
        assert {t.status for t in m.Task.select()} == {"done"}
        assert [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)] == ["first", "gated"]
    finally:
        store.close()
