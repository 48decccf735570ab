"""Bad input is refused with one line and exit 2, and changes nothing: no run folder (nor the
runs folder above it), no branch, no store written, no control queued. And inputs that used
to wedge a run now work: a partial ``[policies.retries]`` table, ``--agents`` above the task
count."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import HEARTBEAT_LOST_SECONDS

from .helpers import NO_AUTO_PAUSE, attempts_of, cli, explain, git, py, read_store, task, write_mission


def repo_state(repo: Path) -> tuple[str, str, str]:
    return (git(repo, "for-each-ref", "--format=%(refname) %(objectname)"), git(repo, "status", "--porcelain"),
            (repo / ".git" / "HEAD").read_text())


def assert_refused(proc, *, mentions: str) -> None:
    assert proc.returncode == 2, explain(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybrid-tui: error: "), proc.stderr
    assert mentions in lines[0], lines[0]


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _prepare(case: str, mission: Path) -> list[str]:
    """Extra arguments (and changes to the mission) that make ``run`` refuse."""
    toml = mission / "mission.toml"
    if case == "cli-backend-without-template":
        return ["--backend", "cli"]
    if case == "metrics-port-out-of-range":
        return ["--metrics-port", "99999"]
    if case == "pace-inf":
        return ["--pace", "inf"]
    if case == "runs-dir-is-a-file":
        return ["--runs-dir", "/proc/version"]
    if case == "agents-zero":
        return ["--agents", "0"]
    if case == "no-git-with-an-editing-backend":
        return ["--no-git"]  # the mission's replay agents edit files: every attempt would fail
    if case == "unknown-option":
        return ["--bogus"]
    if case == "detached-head":
        git(mission / "repo", "checkout", "-q", "--detach")
        return []
    if case == "existing-user-branch":
        git(mission / "repo", "branch", "user-feature")
        toml.write_text(toml.read_text().replace('repo = "repo"\n', 'repo = "repo"\nmission_branch = "user-feature"\n'))
        return []
    if case == "bare-repository":
        git(mission, "clone", "-q", "--bare", "repo", "bare.git")
        toml.write_text(toml.read_text().replace('repo = "repo"', 'repo = "bare.git"'))
        return []
    raise AssertionError(case)


MENTIONS = {
    "cli-backend-without-template": "--backend cli", "metrics-port-out-of-range": "--metrics-port 99999",
    "pace-inf": "--pace inf", "runs-dir-is-a-file": "--runs-dir /proc/version", "agents-zero": "--agents",
    "unknown-option": "--bogus", "detached-head": "detached", "existing-user-branch": "'user-feature' already exists",
    "bare-repository": "bare git repository",
    "no-git-with-an-editing-backend": "--no-git: the replay backend edits files",
}


@pytest.mark.parametrize("case", sorted(MENTIONS))
def test_a_refused_start_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, case: str):
    mission = write_mission(tmp_path / "m", [task("a"), task("b")])
    extra = _prepare(case, mission)
    before = repo_state(mission / "repo")
    runs = tmp_path / "runs"
    args = ["run", str(mission), "--headless", *extra]
    if "--runs-dir" not in extra:
        args += ["--runs-dir", str(runs)]
    assert_refused(cli(*args, cwd=tmp_path), mentions=MENTIONS[case])
    assert not runs.exists()
    assert repo_state(mission / "repo") == before


def test_a_busy_metrics_port_refuses_the_start_before_anything_exists(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    before = repo_state(mission / "repo")
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        proc = cli("run", str(mission), "--headless", "--runs-dir", str(tmp_path / "runs"), "--metrics-port", str(port),
                   cwd=tmp_path)
    assert_refused(proc, mentions=f"--metrics-port {port}")
    assert not (tmp_path / "runs").exists() and repo_state(mission / "repo") == before


def test_a_plain_repository_folder_holding_the_runs_folder_is_refused_not_copied_into_itself(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    (mission / "repo" / ".git").rename(tmp_path / "moved.git")  # the mission folder is a plain folder now
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text().replace('repo = "repo"', 'repo = "."'))
    proc = cli("run", ".", "--headless", cwd=mission)  # the default runs folder: .hybrid/runs in the mission
    assert_refused(proc, mentions="holds the runs folder")
    assert not (mission / ".hybrid").exists()


def _finished_run(tmp_path: Path) -> Path:
    mission = write_mission(tmp_path / "m", [task("a"), task("b")])
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), "--agents", "60", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (run_dir,) = runs.iterdir()
    return run_dir


def test_controls_with_bad_values_and_exports_to_bad_places_are_refused_at_once(tmp_path: Path):
    run_dir = _finished_run(tmp_path)
    # --agents 60 for two tasks: two agents, two worktrees.
    assert sorted(p.name for p in (run_dir / "worktrees").iterdir() if not p.name.startswith(".")) == ["agent-01", "agent-02"]
    for args, mentions in ((["scale", str(run_dir), "-3"], "pool size -3"),
                           (["scale", str(run_dir), "0"], "pool size 0"),
                           (["retry", str(run_dir), "nosuch"], "no task 'nosuch'"),
                           (["rollback", str(run_dir), "nosuch"], "no task 'nosuch'"),
                           (["export-replay", str(run_dir), "/proc/x"], "/proc/x"),
                           (["scale", str(run_dir)], "size")):
        assert_refused(cli(*args, cwd=tmp_path), mentions=mentions)
    assert not Path("/proc/x").exists()
    store, _ = read_store(run_dir)
    try:
        assert m.Control.select().count() == 0
    finally:
        store.close()


def test_resume_of_an_empty_state_db_writes_nothing(tmp_path: Path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "state.db").touch()
    assert_refused(cli("resume", str(run_dir), cwd=tmp_path), mentions="empty")
    assert sorted(p.name for p in run_dir.iterdir()) == ["state.db"] and (run_dir / "state.db").stat().st_size == 0


def test_a_partial_retries_table_keeps_the_default_rules_for_the_other_failure_types(tmp_path: Path):
    counter = tmp_path / "attempts-so-far"
    flaky = py(f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; "
               "p.write_text(str(n + 1)); sys.exit(0 if n else 1)")
    mission = write_mission(tmp_path / "m", [task("flaky", checks=[flaky])],
                            mission='\n[policies.retries.timeout]\nmax_retries = 0\nbackoff = "immediate"\n')
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)  # validation_failed kept its default: retried with feedback
    store, _ = read_store(next(runs.iterdir()))
    try:
        assert [a.outcome for a in attempts_of("flaky")] == ["failed", "succeeded"]
    finally:
        store.close()


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


needs_chattr = pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr (e2fsprogs) on an ext4-like fs")


@needs_chattr
@pytest.mark.parametrize("frozen", [".", "events.jsonl", "coordinator.lock", "logs", "record"])
def test_resume_of_a_run_folder_that_cannot_be_written_is_one_line(tmp_path: Path, frozen: str):
    run_dir = _finished_run(tmp_path)
    target = run_dir / frozen
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    _chattr("+i", target)
    try:
        assert_refused(cli("resume", str(run_dir), "--headless", cwd=tmp_path), mentions="cannot be written")
    finally:
        _chattr("-i", target)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


@needs_chattr
# The store's files too: SQLite maps state.db-shm into memory, where a write to a file made
# immutable is SIGBUS (the process dies with no word), not an error.
@pytest.mark.parametrize("frozen", ["events.jsonl", "state.db", "state.db-wal", "state.db-shm"])
def test_a_run_file_made_immutable_mid_run_stops_the_run_with_one_line(tmp_path: Path, frozen: str):
    mission = write_mission(tmp_path / "m", [task(f"t{i}", checks=["sleep 1"]) for i in range(6)], mission=NO_AUTO_PAUSE)
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--agents", "2",
                             "--runs-dir", str(runs)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={k: v for k, v in os.environ.items() if k != "HYBRID_TUI_CRASH_AT"})
    events = None
    try:
        deadline = time.monotonic() + 120  # a safety net
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(runs.glob("*/events.jsonl"))
            if found and "-> validating" in found[0].read_text():
                events = found[0]
                break
            time.sleep(0.05)
        assert events is not None, "the run never got to validating"
        _chattr("+i", events.parent / frozen)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if events is not None:
            _chattr("-i", events.parent / frozen)
    assert proc.returncode == 2, f"{out[-2000:]}\n{err[-2000:]}"
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "cannot write" in x]
    assert "hybrid-tui resume" in line
    # Writable again: the run carries on from where it stopped.
    resumed = cli("resume", str(events.parent), "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)


def test_resume_carries_on_from_the_store_when_the_mission_folder_is_gone(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a"), task("b", deps=["a"]), task("c", deps=["b"])])
    runs = tmp_path / "runs"
    crashed = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path,
                  env={"HYBRID_TUI_CRASH_AT": "dispatch:b"})
    assert crashed.returncode == -9, explain(crashed)
    for name in ("mission.toml", "issues", "sis", "replay"):  # the mission's files go; its repository stays
        path = mission / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run_dir = next(runs.iterdir())
    resumed = cli("resume", str(run_dir), "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    store, _ = read_store(run_dir)
    try:
        assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "done", "c": "done"}
    finally:
        store.close()


def test_a_deleted_shm_stops_the_coordinator_and_controls_meanwhile_are_refused_not_lost(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task(f"t{i}", checks=["sleep 1"]) for i in range(4)], mission=NO_AUTO_PAUSE)
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--agents", "1",
                             "--runs-dir", str(runs)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={k: v for k, v in os.environ.items() if k != "HYBRID_TUI_CRASH_AT"})
    try:
        deadline = time.monotonic() + 120  # a safety net
        shm = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(runs.glob("*/events.jsonl"))
            if found and "-> validating" in found[0].read_text():
                shm = found[0].parent / "state.db-shm"
                break
            time.sleep(0.05)
        assert shm is not None and shm.exists(), "the run never got to validating"
        shm.unlink()
        # While the coordinator still runs, a control is refused (never "queued", then lost).
        # Once it has let go of the run (it stops itself; its process may not have exited
        # yet), a control is queued for the next resume, which applies it (checked below).
        while proc.poll() is None:
            scale = cli("scale", str(shm.parent), "1", cwd=tmp_path)
            if proc.poll() is None and not (scale.returncode == 0 and scale.stdout.startswith("queued")):
                assert_refused(scale, mentions="state.db-shm was deleted")
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, f"{out[-2000:]}\n{err[-2000:]}"  # it stopped itself, cleanly
    assert "state.db-shm was deleted or replaced" in err and "Traceback" not in err
    resumed = cli("resume", str(shm.parent), "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    store, _ = read_store(shm.parent)
    try:
        for control in m.Control.select():
            assert control.status != "pending", control.command  # every queued control was applied
    finally:
        store.close()


def test_a_store_whose_shm_was_replaced_under_a_live_coordinator_is_refused(tmp_path: Path):
    from hybrid_tui.app.launch import LaunchError, open_run_store
    from hybrid_tui.runtime.runlock import RunLock

    run_dir = _finished_run(tmp_path)
    store, _ = open_run_store(run_dir)  # opened: its state.db-shm exists, as a live coordinator's does
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        other, _ = open_run_store(run_dir)  # the same index: fine
        other.close()
        (run_dir / "state.db-shm").unlink()
        with pytest.raises(LaunchError, match="state.db-shm was deleted or replaced"):
            open_run_store(run_dir)
        assert not (run_dir / "state.db-shm").exists()
    finally:
        lock.release()
        store.close()


def test_cancel_from_the_command_line_is_applied_by_the_next_coordinator(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a"), task("b", deps=["a"]), task("c", deps=["b"])])
    runs = tmp_path / "runs"
    crashed = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path,
                  env={"HYBRID_TUI_CRASH_AT": "dispatch:b"})
    assert crashed.returncode == -9, explain(crashed)
    run_dir = next(runs.iterdir())
    assert_refused(cli("cancel", str(run_dir), "nope", cwd=tmp_path), mentions="has no task 'nope'")
    queued = cli("cancel", str(run_dir), "b", cwd=tmp_path)
    assert queued.returncode == 0 and queued.stdout.startswith("queued cancel of b for run"), explain(queued)
    resumed = cli("resume", str(run_dir), "--headless", cwd=tmp_path)
    assert resumed.returncode == 1, explain(resumed)  # a task cancelled: not every task done
    store, _ = read_store(run_dir)
    try:
        assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "cancelled", "c": "blocked"}
        assert [(c.command, c.status) for c in m.Control.select()] == [("cancel", "applied")]
    finally:
        store.close()


def test_stop_of_a_run_no_coordinator_drives_is_refused_so_the_next_resume_is_not_stopped(tmp_path: Path):
    """`stop` on a finished run was queued (exit 0) and applied by the next `resume`, which
    stopped at once (exit 3) with the task the user had just retried still ready."""
    mission = write_mission(tmp_path / "m", [task("a"), task("b", deps=["a"])])
    runs = tmp_path / "runs"
    crashed = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path,
                  env={"HYBRID_TUI_CRASH_AT": "dispatch:b"})
    assert crashed.returncode == -9, explain(crashed)
    run_dir = next(runs.iterdir())
    time.sleep(HEARTBEAT_LOST_SECONDS + 0.5)  # the killed coordinator's last heartbeat goes stale
    assert_refused(cli("stop", str(run_dir), cwd=tmp_path), mentions="its coordinator is gone")
    resumed = cli("resume", str(run_dir), "--headless", cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    assert_refused(cli("stop", str(run_dir), cwd=tmp_path), mentions=f"run {run_dir.name} is finished")
    # The other controls wait for the next resume, and say so.
    queued = cli("pause", str(run_dir), cwd=tmp_path)
    assert queued.returncode == 0, explain(queued)
    assert queued.stdout.splitlines()[1:] == [
        f"no coordinator drives run {run_dir.name} now: `hybrid-tui resume {run_dir.name}` applies it"]
    store, _ = read_store(run_dir)
    try:
        m.Control.delete().execute()  # not applied here: the pause was to see the message
    finally:
        store.close()
    store, _ = read_store(run_dir)
    try:
        assert [c.command for c in m.Control.select()] == []  # nothing queued
        assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "done"}
    finally:
        store.close()
