"""The demo's key moments, captured by driving web-18 step by step (gated replay agents, a
frozen virtual clock, pinned git dates), rendered from store copies and compared as SVG.

Regenerate after checking by eye: ``pytest tests/tui/test_demo_snapshots.py --snapshot-update``
and the README's copies with ``python -m hybrid_tui.app.demo --screenshots docs/screenshots``.
"""

from __future__ import annotations

import sqlite3

import pytest

from hybrid_tui.app.demo_capture import MOMENTS, capture_moments, moment_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moments(tmp_path_factory):
    captured = capture_moments(tmp_path_factory.mktemp("demo"))
    return {moment.name: moment for moment in captured}


def test_every_key_moment_is_reached_in_order(moments):
    assert list(moments) == ["start", "retry", "locks", "conflict", "done"]
    assert set(moments) == set(MOMENTS)

    def rows(name: str, sql: str) -> list[tuple]:
        db = sqlite3.connect(moments[name].db_path)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    # Start: agents at work, templates locked, tasks waiting for them.
    assert rows("start", "select count(*) from task where status = 'running'")[0][0] >= 4
    # Lock contention: a ready task declares a file that a running task holds.
    assert rows("locks", "select count(*) from task t join file_operation f on f.task_id = t.task_id "
                         "join file_lock l on l.path = f.path and l.task_id != t.task_id where t.status = 'ready'")[0][0] > 0
    # A retry: the recorded bad attempt failed validation and attempt 2 runs with the feedback.
    assert rows("retry", "select outcome, failure_type from attempt where task_id = 'sec-knowledge-path' "
                         "and phase != 'planning' order by number") == [("failed", "validation_failed"), ("running", None)]
    # The conflict waits in the attention view with its reason; the run ends with it, the rest done.
    failed = rows("conflict", "select task_id, attention_reason from task where status = 'failed'")
    assert len(failed) == 1 and failed[0][1]
    statuses = dict(rows("done", "select status, count(*) from task group by status"))
    assert statuses == {"done": 17, "failed": 1}
    assert rows("done", "select status from run") == [("finished",)]


@pytest.mark.parametrize("name", MOMENTS)
def test_demo_moment(moments, snap_compare, name):
    moment = moments[name]
    press = ["a"] if moment.screen == "attention" else []
    assert snap_compare(moment_app(moment), terminal_size=moment.size, press=press)
