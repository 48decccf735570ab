"""task_state stores the core's change records by type: every record class the core
defines has a case, and a record it does not know is an error, never dropped or logged."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybrid_tui.core import changes as core_changes
from hybrid_tui.core.changes import LockAcquired, TaskTransition
from hybrid_tui.core.states import TaskStatus
from hybrid_tui.runtime.context import Transaction
from hybrid_tui.runtime.events import EventLog
from hybrid_tui.runtime.task_state import UnknownChange, apply_changes, write_changes
from hybrid_tui.store import models as m


def _context(store, tmp_path: Path) -> SimpleNamespace:
    ctx = SimpleNamespace(run_id="r1", store=store, events=EventLog(store, "r1", tmp_path / "events.jsonl", lambda: 1.0),
                          scheduler=SimpleNamespace(shown_score=lambda task_id: 0.5), txn=None)

    @contextlib.contextmanager
    def transaction():
        txn = Transaction()
        with store.write("r1") as version:
            txn.version = version
            ctx.txn = txn
            yield txn
        ctx.events.flush()

    ctx.transaction = transaction
    return ctx


@dataclasses.dataclass(frozen=True)
class NewKindOfChange:
    task_id: str


def test_a_change_record_of_an_unknown_type_raises_and_the_transaction_rolls_back(store_with_run, tmp_path: Path):
    ctx = _context(store_with_run, tmp_path)
    lock = LockAcquired(path="a.py", task_id="t1", acquired_at=1.0, expires_at=2.0)
    with pytest.raises(UnknownChange, match="NewKindOfChange"):
        apply_changes(ctx, [lock, NewKindOfChange("t1")], 1.0)
    assert m.FileLock.select().count() == 0  # the lock before it was not stored either
    ctx.events.close()


def test_every_change_record_class_of_the_core_is_handled(store_with_run, tmp_path: Path):
    """Each class core.changes defines is stored without raising."""
    ctx = _context(store_with_run, tmp_path)
    samples = {
        "TaskTransition": TaskTransition("t1", TaskStatus.PENDING, TaskStatus.READY),
        "LockAcquired": LockAcquired(path="a.py", task_id="t1", acquired_at=1.0, expires_at=2.0),
        "LockReleased": core_changes.LockReleased(path="a.py", task_id="t1"),
        "AgentChanged": core_changes.AgentChanged(agent_id="agent-01", state="removed"),
        "Alert": core_changes.Alert(kind="budget_low", level="warning", message="low"),
        "CancelRunning": core_changes.CancelRunning(task_id="t1", agent_id="agent-01", attempt=1, reason="r"),
        "PoolTarget": core_changes.PoolTarget(size=3),
        "PauseChanged": core_changes.PauseChanged(paused=True, reason="why"),
        "BreakerChanged": core_changes.BreakerChanged(backend="sim", state="open"),
        "TaskWaiting": core_changes.TaskWaiting(task_id="t1", kind="lock", message="a.py held by task t2",
                                                holder="t2"),
    }
    defined = {name for name, obj in vars(core_changes).items()
               if inspect.isclass(obj) and obj.__module__ == core_changes.__name__ and dataclasses.is_dataclass(obj)}
    assert defined <= set(samples), f"a change record class without a sample here: {defined - set(samples)}"
    with ctx.transaction() as txn:
        write_changes(ctx, txn, list(samples.values()), 1.0)
    effects = ctx.txn.effects
    assert effects.removed_agents == ["agent-01"]
    assert [c.task_id for c in effects.cancels] == ["t1"]
    assert effects.policy_paused is True
    assert m.Run.get_by_id("r1").pool_target == 3
    ctx.events.close()


def test_the_tasks_a_dispatch_round_holds_back_are_one_event(store_with_run, tmp_path: Path):
    ctx = _context(store_with_run, tmp_path)
    waits = [core_changes.TaskWaiting(task_id=f"t{i}", kind="lock", message=f"f{i}.py held by task h{i}",
                                      holder=f"h{i}") for i in range(7)]
    with ctx.transaction() as txn:
        write_changes(ctx, txn, waits, 1.0)
    ctx.events.close()
    rows = list(m.Event.select().where(m.Event.kind == "task.waiting"))
    assert len(rows) == 1 and rows[0].task_id is None
    assert rows[0].message.startswith("7 ready tasks held back: t0: f0.py held by task h0; ")
    assert rows[0].message.endswith("; and 2 more")
    data = json.loads(rows[0].data_json)["waits"]
    assert data["t6"] == {"kind": "lock", "message": "f6.py held by task h6", "holder": "h6"}
