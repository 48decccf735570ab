"""The store's cursors redact every secret from a write's parameters, batch by batch: a batch
of staged rows is searched in one pass (``Redactor.rows``), so these tests put one secret
among many clean rows, in every form a secret reaches the store (the raw value, its JSON
escape inside an encoded event, a key-shaped ``sk-ant-`` string, a ``str`` subclass), on
SQLite (whose file and WAL are searched byte by byte) and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.store import open_store
from hybrid_tui.vocabulary import REDACTED, Redactor

RUN = "r1"
SECRET = "s3cr3t-\"quoted\"-value-4711"  # a quote: its JSON-escaped form differs from the raw value
KEY = "sk-ant-api03-abcdefghijklmnop"


class Label(str):
    """A ``str`` subclass: both drivers bind it as text, so it must be redacted like a str."""


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def add_run(store) -> None:
    with store.write():
        m.Run.create(id=RUN, mission_name="demo", mission_path="/m", run_dir="/runs/r1", repo_path="/r",
                     source_repo="/r", base_branch="main", mission_branch="m", config_json="{}",
                     mission_budget_usd=10, retry_budget_usd=2, pool_min=1, pool_max=2, pool_target=1,
                     created_at=1.0, updated_at=1.0)


def add_tasks(store, count: int) -> None:
    with store.write(RUN):
        for i in range(count):
            store.staged.insert(m.Task, {"run": RUN, "task_id": f"t{i:03}", "issue_id": "i1", "title": f"task {i}",
                                         "priority": "MEDIUM", "spec_json": "{}", "created_at": 0.0,
                                         "updated_at": 0.0})


def stored_bytes(url: str) -> bytes:
    path = Path(url)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_one_secret_among_many_staged_rows_is_redacted_and_the_clean_rows_are_stored_as_given(
        any_store_url: str, secret_env: None) -> None:
    store = open_store(any_store_url)
    try:
        add_run(store)
        add_tasks(store, 60)
        reasons = {"t007": f"validation printed {SECRET}", "t031": f"the agent echoed {KEY} twice: {KEY}",
                   "t052": Label(f"labelled {SECRET}")}
        with store.write(RUN):
            for i in range(60):  # one executemany (SQLite) / one multi-row UPDATE (PostgreSQL) of 60 rows
                task_id = f"t{i:03}"
                store.staged.update(m.Task, {"status": "failed", "attention_reason": reasons.get(task_id, f"clean {i}")},
                                    where={"run": RUN, "task_id": task_id})
            data = json.dumps({"stderr": f"token={SECRET}"})  # the secret as JSON escapes it
            assert SECRET not in data and json.dumps(SECRET)[1:-1] in data
            store.add_events([(RUN, float(i), "task.status", "info", f"t{i:03}", 1, None, f"event {i}",
                               data if i == 40 else "{}") for i in range(60)])
        rows = dict(m.Task.select(m.Task.task_id, m.Task.attention_reason).tuples())
        events = list(m.Event.select(m.Event.message, m.Event.data_json).order_by(m.Event.seq).tuples())
    finally:
        store.close()
    assert rows["t007"] == f"validation printed {REDACTED}"
    assert rows["t031"] == f"the agent echoed sk-ant-{REDACTED} twice: sk-ant-{REDACTED}"
    assert rows["t052"] == f"labelled {REDACTED}"
    assert {k: v for k, v in rows.items() if k not in reasons} == {f"t{i:03}": f"clean {i}" for i in range(60)
                                                                 if f"t{i:03}" not in reasons}
    assert events[40] == ("event 40", json.dumps({"stderr": f"token={REDACTED}"}))
    assert [e for i, e in enumerate(events) if i != 40] == [(f"event {i}", "{}") for i in range(60) if i != 40]
    for text in (*rows.values(), *(d for _, d in events)):
        assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text and KEY not in text
    if "://" not in any_store_url:  # SQLite: not a byte of the file or its WAL holds the secret
        stored = stored_bytes(any_store_url)
        assert b"validation printed" in stored
        assert SECRET.encode() not in stored and json.dumps(SECRET)[1:-1].encode() not in stored
        assert KEY.encode() not in stored and b"labelled " + SECRET.encode() not in stored


def test_a_clean_batch_is_passed_on_as_it_is_and_only_the_rows_holding_a_secret_are_copied(secret_env: None) -> None:
    redactor = Redactor()
    needles = redactor.needles()
    clean = [(RUN, i, None, 2.5, f"text {i}") for i in range(100)]
    assert redactor.rows(clean, needles) is clean
    named = [{"a": f"x{i}", "b": i} for i in range(3)] + [{"a": f"y {SECRET}", "b": 3}]
    out = redactor.rows(iter(named), needles)  # any iterable, mappings too
    assert out[:3] == named[:3] and all(a is b for a, b in zip(out[:3], named[:3]))
    assert out[3] == {"a": f"y {REDACTED}", "b": 3}
    # A match that only spans two strings of the batch redacts nothing (and loses nothing).
    split = [("sk-an", "t-xyz1234"), (SECRET[:9], SECRET[9:])]
    assert redactor.rows(split, needles) == split
    assert redactor.params(("a", 1, f"b {SECRET}"), needles) == ("a", 1, f"b {REDACTED}")
    assert redactor.params({"a": Label(KEY)}, needles) == {"a": f"sk-ant-{REDACTED}"}
