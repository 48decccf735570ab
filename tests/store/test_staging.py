"""Staged writes: rows held back inside a write transaction reach the store once, at the
commit, and never when the transaction fails."""

from __future__ import annotations

import time

import pytest

from hybrid_tui.runtime.eventlog import read_events_jsonl
from hybrid_tui.runtime.events import EventLog
from hybrid_tui.store import models as m

RUN = "r1"


@pytest.fixture()
def store(store_with_run):
    """The run ``r1`` with one issue and two tasks, ``a`` and ``b``."""
    with store_with_run.write():
        m.Issue.create(run=RUN, issue_id="i1", title="issue", body="", path="issues/i1.md")
        for task_id in ("a", "b"):
            m.Task.create(run=RUN, task_id=task_id, issue_id="i1", title=task_id, description="", priority="HIGH",
                          domain="api", estimated_duration_minutes=1, estimated_input_tokens=1,
                          estimated_output_tokens=1, spec_json="{}", created_at=0, updated_at=0)
    return store_with_run


def task_row(task_id: str) -> m.Task:
    return m.Task.get((m.Task.run == RUN) & (m.Task.task_id == task_id))


def test_several_updates_of_a_row_in_one_transaction_land_as_its_last_values(store):
    with store.write(RUN) as version:
        store.staged.update(m.Task, {"status": "running", "agent_id": "agent-01", "version": version},
                            where={"run": RUN, "task_id": "a"})
        store.staged.update(m.Task, {"status": "validating"}, where={"run": RUN, "task_id": "a"},
                            increments={"cost_usd": 0.25})
        store.staged.update(m.Task, {"status": "done"}, where={"run": RUN, "task_id": "a"},
                            increments={"cost_usd": 0.5})
        store.staged.update(m.Task, {"status": "ready"}, where={"run": RUN, "task_id": "b"})
    a, b = task_row("a"), task_row("b")
    assert (a.status, a.agent_id, a.cost_usd, a.version) == ("done", "agent-01", 0.75, version)
    assert b.status == "ready"


def test_a_rolled_back_transaction_writes_none_of_its_staged_rows_now_or_later(store):
    with pytest.raises(RuntimeError):
        with store.write(RUN):
            store.staged.update(m.Task, {"status": "failed"}, where={"run": RUN, "task_id": "a"})
            store.staged.insert(m.FileLock, {"run": RUN, "path": "x.py", "task_id": "a", "acquired_at": 0,
                                             "expires_at": 1})
            raise RuntimeError("boom")
    with store.write(RUN):  # the next commit must not carry them either
        store.staged.update(m.Task, {"status": "ready"}, where={"run": RUN, "task_id": "b"})
    assert task_row("a").status == "pending" and task_row("b").status == "ready"
    assert m.FileLock.select().count() == 0


def test_inserts_and_deletes_keep_their_order(store):
    lock = {"run": RUN, "path": "x.py", "acquired_at": 0, "expires_at": 1}
    with store.write(RUN):  # a released then taken again by b, in one transaction
        store.staged.insert(m.FileLock, {**lock, "task_id": "a"}, or_replace=True)
        store.staged.delete(m.FileLock, where={"run": RUN, "path": "x.py", "task_id": "a"})
        store.staged.insert(m.FileLock, {**lock, "task_id": "b"}, or_replace=True)
    assert [(row.path, row.task_id) for row in m.FileLock.select()] == [("x.py", "b")]


def test_outside_a_transaction_a_staged_write_happens_at_once(store):
    store.staged.update(m.Task, {"status": "blocked"}, where={"run": RUN, "task_id": "a"})
    assert task_row("a").status == "blocked"


def test_events_of_a_transaction_get_consecutive_numbers_and_reach_events_jsonl_after_the_commit(store, tmp_path):
    log = EventLog(store, RUN, tmp_path / "events.jsonl", time.time)
    try:
        with store.write(RUN):
            store.add_event(RUN, "direct", "written at once")
            log.add("task.status", "pending -> ready", task_id="a", old="pending", new="ready")
            log.add("task.status", "ready -> running", task_id="a", old="ready", new="running")
        log.flush()
        with pytest.raises(RuntimeError):
            with store.write(RUN):
                log.add("task.status", "running -> failed", task_id="a", old="running", new="failed")
                raise RuntimeError("rolled back")
        log.flush()
        with store.write(RUN):
            log.add("task.status", "running -> done", task_id="a", old="running", new="done")
        log.flush()
    finally:
        log.close()
    rows = [(e.seq, e.kind, e.message) for e in m.Event.select().order_by(m.Event.seq)]
    assert [message for _, _, message in rows] == ["written at once", "pending -> ready", "ready -> running",
                                                   "running -> done"]
    seqs = [seq for seq, _, _ in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    lines = read_events_jsonl(tmp_path / "events.jsonl")
    assert [(line["seq"], line["message"]) for line in lines] == [(seq, message) for seq, _, message in rows]
