"""Store write throughput for the runtime's write pattern (room: bench; runtime persistence + store).

One task transition the way the coordinator writes it: ``Store.write(run)`` (BEGIN
IMMEDIATE, bump the run version) around the runtime's own ``task_state.write_changes`` with
one ``TaskTransition`` (the task UPDATE and the event INSERT are staged and written at the
commit), then COMMIT. One transition per transaction is the worst case: the runtime's
loop commits all the transitions of a turn together. Measured on a SQLite file
holding a run of N tasks, as transitions per second.

The floor: the exact same SQL statements with the exact same parameters (captured from
the connection's cursors during a second, untimed pass on a copy of the store), executed by
the raw ``sqlite3`` module on a third copy with the same pragmas. The ratio is what the
ORM and the runtime's Python add on top of SQLite.
"""

from __future__ import annotations

import gc
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from . import core_bench
from .common import Figure, Timer
from .scheduling import RUN_ID, create_bench_run, mission_of

STATUS_CYCLE = ("ready", "running", "validating", "integrating", "done")


class StatementCapture:
    """Collects every (sql, params) the store runs, executemany batches included: the
    connection's cursors are wrapped (the staged writes bypass peewee's query log)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple | list[tuple]]] = []  # a list of tuples: an executemany

    def install(self, store) -> None:
        capture = self
        make_cursor = store.db.cursor

        class RecordingCursor:
            def __init__(self, cursor):
                self._cursor = cursor

            def execute(self, sql, params=()):
                capture.statements.append((sql, tuple(params or ())))
                self._cursor.execute(sql, params)
                return self

            def executemany(self, sql, rows):
                rows = [tuple(r) for r in rows]
                capture.statements.append((sql, rows))
                self._cursor.executemany(sql, rows)
                return self

            def __getattr__(self, name):
                return getattr(self._cursor, name)

            def __iter__(self):
                return iter(self._cursor)

        store.db.cursor = lambda *args, **kwargs: RecordingCursor(make_cursor(*args, **kwargs))


def _transitions(task_ids: list[str], count: int, seed: int):
    """``count`` TaskTransition records walking random tasks through the lifecycle."""
    from hybrid_tui.core.changes import TaskTransition
    from hybrid_tui.core.states import TaskStatus

    rng = random.Random(seed)
    state = {t: 0 for t in task_ids}
    out = []
    for _ in range(count):
        task_id = rng.choice(task_ids)
        i = state[task_id]
        j = (i + 1) % len(STATUS_CYCLE)
        state[task_id] = j
        out.append(TaskTransition(task_id, TaskStatus(STATUS_CYCLE[i]), TaskStatus(STATUS_CYCLE[j])))
    return out


def _write_pattern(db_path: Path, run_dir: Path, transitions, *, capture: StatementCapture | None = None) -> Timer:
    """The runtime's write pattern, one transaction per transition; returns its timer."""
    from hybrid_tui.runtime.events import EventLog
    from hybrid_tui.runtime.context import Transaction
    from hybrid_tui.runtime.task_state import write_changes
    from hybrid_tui.store.db import open_store

    store = open_store(db_path, create=False)
    events = EventLog(store, RUN_ID, run_dir / "events.jsonl", time.time)
    # The parts of the run context write_changes reads for a TaskTransition.
    context = SimpleNamespace(run_id=RUN_ID, store=store, events=events,
                              scheduler=SimpleNamespace(shown_score=lambda task_id: 0.0))
    if capture is not None:
        capture.install(store)
    try:
        gc.collect()
        with Timer() as timer:
            for change in transitions:
                now = time.time()
                with store.write(RUN_ID) as version:
                    write_changes(context, Transaction(version), [change], now)
                events.discard()  # the JSONL mirror is not the store: keep it out of both sides
    finally:
        store.close()
    return timer


def replay_raw(db_path: Path, statements: list[tuple[str, tuple]]) -> Timer:
    """Execute captured ``statements`` (see :class:`StatementCapture`) with the raw ``sqlite3``
    module on ``db_path``, with the store's pragmas; time it."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    for pragma in ("journal_mode = wal", "synchronous = normal", "busy_timeout = 30000", "foreign_keys = 1",
                   "cache_size = -16000"):
        conn.execute(f"PRAGMA {pragma}")
    # peewee may log its own BEGIN; keep exactly one per transaction (ours).
    statements = [(s, p) for s, p in statements if not s.upper().startswith("BEGIN") or s == "BEGIN IMMEDIATE"]
    cursor = conn.cursor()
    gc.collect()
    try:
        with Timer() as timer:
            for sql, params in statements:
                if isinstance(params, list):
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params)
    finally:
        conn.close()
    return timer


def run(quick: bool = False, *, seed: int = 1) -> tuple[list[Figure], dict]:
    n_tasks = 200 if quick else 10_000
    count = 300 if quick else 5_000
    tasks = core_bench.random_dag(n_tasks, seed)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-store-") as tmp:
        root = Path(tmp)
        store = create_bench_run(mission_of(tasks, root / "mission", 4), root / "run")
        store.close()
        master = root / "run" / "state.db"
        copies = {}
        for name in ("timed", "captured", "raw"):
            copies[name] = root / f"{name}.db"
            shutil.copyfile(master, copies[name])
        transitions = _transitions([t.task_id for t in tasks], count, seed)
        ours = _write_pattern(copies["timed"], root / "run", transitions)
        capture = StatementCapture()
        _write_pattern(copies["captured"], root / "run", transitions, capture=capture)
        raw = replay_raw(copies["raw"], capture.statements)
        sql_per = (len(capture.statements) - 2 * count) / count  # executemany batches count once
    figures = [
        Figure("store", f"transitions/s, runtime pattern, wall ({n_tasks:,}-task run)", count / ours.wall, "per s",
               count / raw.wall, "raw sqlite3, same SQL", higher_is_better=True,
               note=f"{sql_per:.1f} SQL statements per transition inside BEGIN IMMEDIATE..COMMIT (run version bump, "
                    "task UPDATE, last event seq, event INSERT); DESIGN.md sets no budget of its own"),
        Figure("store", "transitions/s, runtime pattern, CPU", count / ours.cpu, "per s",
               count / raw.cpu, "raw sqlite3, same SQL, CPU", higher_is_better=True),
        Figure("store", "time per transition, CPU", ours.cpu / count * 1e3, "ms",
               raw.cpu / count * 1e3, "raw sqlite3, same SQL, CPU"),
    ]
    details = {"tasks": n_tasks, "transitions": count, "statements_per_transition": sql_per,
               "ours_wall_s": ours.wall, "ours_cpu_s": ours.cpu, "raw_wall_s": raw.wall, "raw_cpu_s": raw.cpu,
               "statements_sample": [s for s, _ in capture.statements[: 2 + int(sql_per) + 1]]}
    return figures, details


if __name__ == "__main__":
    import json

    from .common import render_table

    figs, details = run()
    print(render_table(figs))
    print(json.dumps(details, indent=1))
