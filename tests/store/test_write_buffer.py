"""The write buffer of Store.write on a real SQLite file: task-row updates merged and written
once at commit, events inserted at commit with the seq they would have had, reads inside the
transaction seeing the buffered writes, rolled-back writes never stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hybrid_tui.store import models as m, open_store

RUN = "r1"


def add_run(store) -> None:
    with store.write():
        m.Run.create(
            id=RUN, mission_name="tiny", mission_path="", run_dir="", repo_path="", source_repo="",
            base_branch="main", mission_branch="hybrid/tiny", config_json="{}", mission_budget_usd=5,
            retry_budget_usd=1, pool_min=1, pool_max=2, pool_target=1, created_at=0, updated_at=0,
        )


@pytest.fixture
def store(tmp_path: Path):
    store = open_store(tmp_path / "state.db")
    add_run(store)
    with store.write(RUN):
        for task_id in ("a", "b"):
            m.Task.create(run=RUN, task_id=task_id, issue_id="i", title=task_id, priority="HIGH", spec_json="{}",
                          created_at=0, updated_at=0)
    yield store
    store.close()


def stored_tasks(path: str) -> dict[str, tuple]:
    """What another connection sees (only committed rows)."""
    with sqlite3.connect(path) as other:
        return {row[0]: row[1:] for row in other.execute(
            "SELECT task_id, status, cost_usd, attempts, version FROM task ORDER BY task_id")}


def db_file(store) -> str:
    return store.url.removeprefix("sqlite:///")


def test_updates_of_one_task_are_merged_and_increments_add_up(store) -> None:
    with store.write(RUN) as version:
        store.update_rows(m.Task, {"status": "running", "version": version}, where={"run": RUN, "task_id": "a"})
        store.update_rows(m.Task, {"attempts": 1}, where={"run": RUN, "task_id": "a"}, increments={"cost_usd": 0.25})
        store.update_rows(m.Task, {"status": "done"}, where={"run": RUN, "task_id": "a"}, increments={"cost_usd": 0.5})
        store.update_rows(m.Task, {"status": "ready"}, where={"run": RUN, "task_id": "b"})
        assert stored_tasks(db_file(store))["a"][0] == "pending"  # not committed yet
    assert stored_tasks(db_file(store)) == {"a": ("done", 0.75, 1, version), "b": ("ready", 0.0, 0, 0)}


def test_a_value_set_after_an_increment_replaces_it_and_an_increment_after_a_value_adds_to_it(store) -> None:
    with store.write(RUN):
        store.update_rows(m.Task, {}, where={"run": RUN, "task_id": "a"}, increments={"cost_usd": 2.0})
        store.update_rows(m.Task, {"cost_usd": 1.0}, where={"run": RUN, "task_id": "a"})
        store.update_rows(m.Task, {}, where={"run": RUN, "task_id": "a"}, increments={"cost_usd": 0.5})
    assert stored_tasks(db_file(store))["a"][1] == 1.5


def test_a_query_inside_the_transaction_sees_the_buffered_updates_and_events(store) -> None:
    with store.write(RUN):
        store.update_rows(m.Task, {"status": "failed"}, where={"run": RUN, "task_id": "a"})
        event = store.add_event(RUN, "task.status", "pending -> failed", task_id="a")
        assert m.Task.get(m.Task.task_id == "a").status == "failed"
        assert m.Event.get_by_id(event.seq).message == "pending -> failed"
        # A peewee update of the same row after the buffered one keeps the order of the writes.
        m.Task.update(failure_type="budget_exhausted").where(m.Task.task_id == "a").execute()
        store.update_rows(m.Task, {"status": "blocked"}, where={"run": RUN, "task_id": "a"})
    row = m.Task.get(m.Task.task_id == "a")
    assert (row.status, row.failure_type) == ("blocked", "budget_exhausted")


def test_buffered_events_are_stored_in_order_with_the_seq_they_were_given(store) -> None:
    with store.write(RUN):
        first = store.add_event(RUN, "one")
    with store.write(RUN):
        given = [store.add_event(RUN, kind, task_id="a", attempt=1, n=i).seq for i, kind in enumerate(("two", "three"))]
        assert given == [first.seq + 1, first.seq + 2]
    rows = list(m.Event.select().order_by(m.Event.seq))
    assert [(r.seq, r.kind) for r in rows][-3:] == [(first.seq, "one"), (given[0], "two"), (given[1], "three")]
    assert (rows[-1].task_id, rows[-1].attempt, rows[-1].data_json) == ("a", 1, '{"n": 1}')


def test_a_failed_transaction_stores_none_of_its_buffered_writes(store) -> None:
    before = m.Event.select().count()
    with pytest.raises(RuntimeError):
        with store.write(RUN):
            store.update_rows(m.Task, {"status": "done"}, where={"run": RUN, "task_id": "a"})
            store.add_event(RUN, "lost")
            raise RuntimeError("boom")
    assert stored_tasks(db_file(store))["a"][0] == "pending"
    assert m.Event.select().count() == before
    with store.write(RUN):  # the next transaction reuses the seq the lost event had, as SQLite would
        store.add_event(RUN, "kept")
    assert m.Event.select().count() == before + 1


def test_a_savepoint_rolled_back_drops_only_its_own_buffered_writes(store) -> None:
    with store.write(RUN):
        store.update_rows(m.Task, {"status": "ready"}, where={"run": RUN, "task_id": "a"})
        store.add_event(RUN, "outer")
        with pytest.raises(RuntimeError):
            with store.write(RUN):  # nested: a savepoint
                store.update_rows(m.Task, {"status": "done"}, where={"run": RUN, "task_id": "a"})
                store.update_rows(m.Task, {"status": "done"}, where={"run": RUN, "task_id": "b"})
                store.add_event(RUN, "inner")
                raise RuntimeError("boom")
        store.add_event(RUN, "after")
    assert {k: v[0] for k, v in stored_tasks(db_file(store)).items()} == {"a": "ready", "b": "pending"}
    kinds = [kind for (kind,) in m.Event.select(m.Event.kind).order_by(m.Event.seq).tuples()]
    assert kinds[-2:] == ["outer", "after"] and "inner" not in kinds
