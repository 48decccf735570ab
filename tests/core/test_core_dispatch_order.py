"""Dispatch order against a brute-force reference, and the change records' identity.

The scheduler keys its ready heap lazily (a task whose file gets locked is re-keyed only
when dispatch reaches it); these tests hold it to the plain definition: the next dispatch
is the first task of ``ready_ids()`` (score with the locked-file penalty, then id) whose
declared files are all free.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from hybrid_tui.core import AgentChanged, Dispatch, LockAcquired, LockReleased, TaskStatus, TaskTransition
from .helpers import NO_PAUSE, REVIEW, sched, task

FILES = [f"src/f{i}.py" for i in range(6)]  # few files: locks collide often


def random_tasks(rng: random.Random, n: int) -> list:
    tasks = []
    for i in range(n):
        deps = tuple(f"t{j}" for j in rng.sample(range(i), min(i, rng.choice([0, 0, 0, 1, 2]))))
        tasks.append(task(f"t{i}", *deps, files=tuple(rng.sample(FILES, rng.choice([0, 1, 1, 2]))),
                          priority=rng.choice(["CRITICAL", "HIGH", "MEDIUM", "LOW"]),
                          minutes=rng.uniform(0, 300)))
    return tasks


def expected_next(s) -> str | None:
    locked = {lk.path for lk in s.locks()}
    for tid in s.ready_ids():
        if not locked.intersection(s.task(tid).info.files):
            return tid
    return None


@pytest.mark.parametrize("seed", range(25))
def test_each_dispatch_takes_the_best_ready_task_with_free_files(seed):
    rng = random.Random(seed)
    s = sched(random_tasks(rng, 40), agents=3, seed=seed, policies=NO_PAUSE)
    running: list[str] = []
    now = 0.0
    while not s.is_finished():
        now += 1
        want = expected_next(s) if s.idle_agents() else None
        dispatches, _ = s.dispatch(now, limit=1)
        assert [d.task_id for d in dispatches] == ([want] if want else [])
        running += [d.task_id for d in dispatches]
        if running and (not dispatches or rng.random() < 0.5):
            tid = running.pop(rng.randrange(len(running)))
            if rng.random() < 0.2:
                s.fail(tid, "validation_failed", now, 0.0, "boom")  # immediate retry: ready again
            else:
                s.succeed(tid, now, 0.0)
        assert now < 10_000, "no progress"


def test_a_lock_taken_after_a_task_became_ready_still_ranks_it_last():
    # Review mode: b (MEDIUM: 89) outranks c (LOW: 59) until a takes b's file (b: 49); then
    # c goes first, and b once a is done.
    s = sched([task("a", files=("x.py",), priority="CRITICAL"), task("b", files=("x.py",), priority="MEDIUM"),
               task("c", priority="LOW")], agents=3, policies=REVIEW)
    assert [d.task_id for d in s.dispatch(1, limit=1)[0]] == ["a"]
    assert s.ready_ids() == ["c", "b"]
    assert [d.task_id for d in s.dispatch(2, limit=1)[0]] == ["c"]
    assert s.dispatch(3)[0] == []  # b waits for x.py
    s.succeed("a", 4)
    assert [d.task_id for d in s.dispatch(5)[0]] == ["b"]


def test_records_are_the_public_frozen_classes():
    s = sched([task("a", files=("x.py",)), task("b", "a")], agents=1)
    dispatches, started = s.dispatch(1)
    assert dispatches == [Dispatch("a", "L3.1", 1, "replay")]
    ended = s.advance("a", "validating", 2) + s.succeed("a", 3, 0.0)
    assert [type(c) for c in started + ended] == [TaskTransition, AgentChanged, LockAcquired, TaskTransition,
                                                  TaskTransition, LockReleased, AgentChanged, TaskTransition]
    assert ended[0] == TaskTransition("a", TaskStatus.RUNNING, TaskStatus.VALIDATING, "", None)
    assert hash(ended[0]) == hash(TaskTransition("a", TaskStatus.RUNNING, TaskStatus.VALIDATING))
    assert started[2] == LockAcquired("x.py", "a", 1, 1 + s.policies.lock_ttl_seconds)
    for record in started + ended + dispatches + [s.spend(), s.task("a")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, dataclasses.fields(record)[0].name, "other")
