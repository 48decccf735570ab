"""Group commit: the loop stores the ends of all attempts that finished since its last turn
in one transaction. A bug while storing one of them rolls that transaction back and pauses
the run with the store consistent (the scheduler in memory may have acted on part of it);
``resume`` rebuilds the scheduler from the store and finishes every task."""

from __future__ import annotations

from pathlib import Path

import anyio

from hybrid_tui.runtime import settle
from hybrid_tui.app.launch import open_run, start_run
from hybrid_tui.store import models as m

from .helpers import task, write_mission


def test_a_bug_storing_one_end_pauses_the_run_consistently_and_resume_finishes_it(tmp_path: Path, monkeypatch, capsys):
    names = ["a", "b", "c", "d", "e", "f"]
    root = write_mission(tmp_path / "mission", [task(name) for name in names])
    store, run_id, c = start_run(root, tmp_path / "runs", "sim", agents=4, git=False)
    real = settle.record_attempt_end

    def record_attempt_end(coordinator, attempt, **outcome):
        real(coordinator, attempt, **outcome)  # the scheduler and the staged rows have it...
        if attempt.task_id == "c":
            raise KeyError("bug while storing c")  # ...then the bug strikes

    monkeypatch.setattr(settle, "record_attempt_end", record_attempt_end)
    try:
        assert anyio.run(c.run) == 3
        run = m.Run.get_by_id(run_id)
        assert run.status == "paused"
        assert run.pause_reason.startswith("coordinator error storing the end of c attempt 1: KeyError: 'bug while storing c'")
        assert f"hybrid-tui resume {run_id}" in run.pause_reason
        assert f"run {run_id} paused: coordinator error storing the end of c" in capsys.readouterr().err
        # Nothing of the rolled-back transaction is in the store: c is not done, no lock or
        # agent is left held, every attempt row has an outcome.
        statuses = {t.task_id: t.status for t in m.Task.select().where(m.Task.run == run_id)}
        assert statuses["c"] == "ready"
        assert set(statuses.values()) <= {"done", "ready", "pending"}
        assert m.FileLock.select().where(m.FileLock.run == run_id).count() == 0
        assert all(a.outcome != "running" for a in m.Attempt.select().where(m.Attempt.run == run_id))
        run_dir = Path(run.run_dir)
    finally:
        store.close()
    monkeypatch.setattr(settle, "record_attempt_end", real)  # the bug is fixed
    store, run_id, c = open_run(run_dir, backend="sim")
    try:
        assert anyio.run(c.run) == 0
        statuses = {t.task_id: t.status for t in m.Task.select().where(m.Task.run == run_id)}
        assert statuses == dict.fromkeys(names, "done")
    finally:
        store.close()


def test_a_run_gives_the_objects_it_froze_back_to_the_garbage_collector(tmp_path: Path):
    """The coordinator freezes its start-up objects out of the cyclic collector's sight for
    the run; a process that runs one coordinator after another (a test suite, a service)
    must get them back, or every run's cycles would be kept for good."""
    import gc

    root = write_mission(tmp_path / "mission", [task("a"), task("b", deps=["a"])])
    store, run_id, c = start_run(root, tmp_path / "runs", "sim", agents=2, git=False)
    try:
        assert anyio.run(c.run) == 0
    finally:
        store.close()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
