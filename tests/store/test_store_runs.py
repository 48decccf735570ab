"""A run created from a mission reads back whole from a real SQLite file; runs are listed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from hybrid_tui.app.main import main
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.store import StoreError, models as m, open_store
from hybrid_tui.store.runs import (
    create_run,
    init_run_dir,
    list_runs,
    load_file_operations,
    load_run_tasks,
    new_run_id,
    run_dir_for,
    state_db_path,
)


def make_run(mission_dir: Path, runs_dir: Path, run_id: str, *, now: float = 1_700_000_000.0):
    mission = load_mission(mission_dir)
    run_dir = init_run_dir(run_dir_for(runs_dir, run_id))
    store = open_store(state_db_path(run_dir))
    create_run(
        store,
        mission,
        run_id=run_id,
        run_dir=run_dir,
        repo_path=run_dir / "repo",
        mission_branch="hybrid/tiny",
        base_branch="main",
        base_commit="abc123",
        backend="replay",
        now=now,
    )
    return mission, run_dir, store


def test_run_round_trip_on_a_real_sqlite_file(tiny_mission: Path, tmp_path: Path) -> None:
    mission, run_dir, store = make_run(tiny_mission, tmp_path / "runs", "20261125-140501-ab12")
    store.close()
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("state.db")) == ["logs", "worktrees"]

    store = open_store(state_db_path(run_dir), create=False)
    try:
        run = store.get_run("20261125-140501-ab12")
        assert (run.mission_name, run.status, run.mission_branch, run.base_branch, run.base_commit) == (
            "tiny", "created", "hybrid/tiny", "main", "abc123"
        )
        assert (run.mission_budget_usd, run.retry_budget_usd, run.pool_min, run.pool_max) == (5.0, 1.0, 1, 2)
        assert run.mission_path == str(tiny_mission)
        assert run.source_repo == str(mission.repo_path)

        issues = list(m.Issue.select().where(m.Issue.run == run.id))
        assert [(i.issue_id, i.title, i.sis_path) for i in issues] == [("001-sub", "Add subtraction", "sis/001-sub.json")]

        tasks = load_run_tasks(store, run.id)
        assert [(t.task_id, t.row.status, t.row.issue_id, t.dependencies) for t in tasks] == [
            ("sub", "ready", "001-sub", []),
            ("sub-test", "pending", "001-sub", ["sub"]),
        ]
        assert [t.spec for t in tasks] == mission.tasks  # the full SIS task survives the trip
        assert tasks[0].row.priority == "HIGH" and tasks[0].row.estimated_duration_minutes == 5

        assert load_file_operations(store, run.id) == {
            "sub": [("edit", "calc.py")],
            "sub-test": [("create", "tests/check_sub.py")],
        }
        events = list(m.Event.select().where(m.Event.run == run.id))
        assert [e.kind for e in events] == ["run.created"]
    finally:
        store.close()


def test_a_run_of_many_tasks_round_trips(tiny_mission: Path, tmp_path: Path) -> None:
    """More rows than one INSERT may carry: every task, edge and file operation arrives."""
    n = 450
    tasks = [
        {
            "task_id": f"t{i:03}",
            "title": f"task {i}",
            "dependencies": list(dict.fromkeys([f"t{i - 1:03}", f"t{i // 2:03}"])) if i else [],
            "file_operations": [{"op": "create", "path": f"gen/f{i}.py", "content": ""}, {"op": "delete", "path": "calc.py"}],
        }
        for i in range(n)
    ]
    doc = {"issue": {"id": "001-sub", "title": "many"}, "tasks": tasks}
    (tiny_mission / "sis" / "001-sub.json").write_text(json.dumps(doc))
    (tiny_mission / "replay" / "sub.json").unlink()
    _, _, store = make_run(tiny_mission, tmp_path / "runs", "big")
    loaded = load_run_tasks(store, "big")
    assert [t.task_id for t in loaded] == [t["task_id"] for t in tasks]
    assert sum(len(t.dependencies) for t in loaded) == 2 * (n - 3) + 2
    assert loaded[300].dependencies == ["t299", "t150"]
    assert [t.task_id for t in loaded if t.row.status == "ready"] == ["t000"]
    ops = load_file_operations(store, "big")
    assert len(ops) == n and ops["t007"] == [("create", "gen/f7.py"), ("delete", "calc.py")]
    store.close()


def test_create_run_writes_all_or_nothing(tiny_mission: Path, tmp_path: Path, monkeypatch) -> None:
    mission = load_mission(tiny_mission)
    run_dir = init_run_dir(tmp_path / "runs" / "r1")
    store = open_store(state_db_path(run_dir))

    def broken_insert(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(m.FileOperation, "insert_many", broken_insert)
    with pytest.raises(RuntimeError):
        create_run(store, mission, run_id="r1", run_dir=run_dir, repo_path=tiny_mission / "repo",
                   mission_branch="hybrid/tiny", base_branch="main")
    assert (m.Run.select().count(), m.Task.select().count(), m.Dependency.select().count(), m.Issue.select().count()) == (
        0, 0, 0, 0
    )
    store.close()


def test_run_ids_sort_by_creation_time() -> None:
    t0 = time.mktime((2026, 11, 25, 14, 5, 1, 0, 0, -1))
    ids = [new_run_id(t0 + offset) for offset in (3600, 0, 59, 86400 * 40)]
    for run_id in ids:
        assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id)
    assert ids[1].startswith("20261125-140501-")
    assert sorted(ids) == [ids[1], ids[2], ids[0], ids[3]]


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden"])
def test_run_dir_for_refuses_ids_that_are_not_a_plain_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        run_dir_for(tmp_path, bad)


def test_init_run_dir_refuses_an_existing_folder(tmp_path: Path) -> None:
    init_run_dir(tmp_path / "r")
    with pytest.raises(StoreError, match="already exists"):
        init_run_dir(tmp_path / "r")


def test_runs_command_lists_mission_status_progress_and_spend(tiny_mission: Path, tmp_path: Path, capsys) -> None:
    runs_dir = tmp_path / "runs"
    _, _, store = make_run(tiny_mission, runs_dir, "20261125-140501-aaaa", now=time.mktime((2026, 11, 25, 14, 5, 1, 0, 0, -1)))
    store.close()
    _, run_dir, store = make_run(tiny_mission, runs_dir, "20261125-150000-bbbb", now=time.mktime((2026, 11, 25, 15, 0, 0, 0, 0, -1)))
    with store.write("20261125-150000-bbbb"):
        m.Task.update(status="done").where(m.Task.task_id == "sub").execute()
        m.Run.update(status="running", heartbeat_at=time.time()).execute()  # its coordinator is alive
        for number, cost in ((1, 0.125), (2, 0.25)):
            m.Attempt.create(run="20261125-150000-bbbb", task_id="sub", number=number, started_at=0, cost_usd=cost)
    store.close()
    (runs_dir / "20261125-160000-cccc").mkdir()
    (runs_dir / "20261125-160000-cccc" / "state.db").write_bytes(b"not a database at all" * 100)
    (runs_dir / "not-a-run").mkdir()  # no state.db: ignored
    db_bytes = state_db_path(run_dir).read_bytes()

    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:5] for line in lines] == [
        ["RUN", "MISSION", "STATUS", "TASKS", "SPEND"],
        ["20261125-140501-aaaa", "tiny", "created", "0/2", "$0.00"],
        ["20261125-150000-bbbb", "tiny", "running", "1/2", "$0.38"],
        ["20261125-160000-cccc", "?", "unreadable:", "unreadable", "store:"],
    ]
    assert lines[1].endswith("2026-11-25 14:05")
    assert "file is not a database" in lines[3]
    assert state_db_path(run_dir).read_bytes() == db_bytes  # listing is read-only

    summaries = list_runs(runs_dir)
    assert [(s.run_id, s.tasks_done, s.tasks_total, s.spend_usd) for s in summaries[:2]] == [
        ("20261125-140501-aaaa", 0, 2, 0.0),
        ("20261125-150000-bbbb", 1, 2, 0.375),
    ]


def test_runs_defaults_to_dot_hybrid_runs_in_the_working_directory(
    tiny_mission: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["runs"]) == 0
    assert capsys.readouterr().out == f"no runs in {work / '.hybrid' / 'runs'}\n"
    assert not (work / ".hybrid").exists()  # listing creates nothing

    _, _, store = make_run(tiny_mission, work / ".hybrid" / "runs", "20261125-140501-abcd")
    store.close()
    assert main(["runs"]) == 0
    assert "20261125-140501-abcd  tiny" in capsys.readouterr().out
