"""Run folders and run rows: create a run from a validated mission, read its tasks back, list runs.

Room: store. Writes only what it is told (a run's initial rows, in one transaction); the
initial task status (``ready`` without dependencies, else ``pending``) is the lifecycle's
entry rule, not a scheduling decision.

A run folder (``<runs_dir>/<run id>/``) holds ``state.db`` (the store), ``events.jsonl``,
``worktrees/`` and ``logs/``. The default runs folder is ``.hybrid/runs`` under the
working directory. A run whose store is elsewhere (``--store postgresql://...``) has
``store.url`` in its folder instead of ``state.db``: the store's URL without its password.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import peewee as pw

from hybrid_tui.core.policies import needs_approval
from hybrid_tui.spec.models import SisTask
from hybrid_tui.store import models as m
from hybrid_tui.store.db import Store, StoreError, redact_url, snapshot, store_backend_of

if TYPE_CHECKING:  # pragma: no cover
    from hybrid_tui.spec.loader import Mission

DEFAULT_RUNS_DIR = Path(".hybrid") / "runs"
STATE_DB = "state.db"
STORE_URL_FILE = "store.url"
EVENTS_FILE = "events.jsonl"
WORKTREES_DIR = "worktrees"
LOGS_DIR = "logs"

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_runs_dir() -> Path:
    return Path.cwd() / DEFAULT_RUNS_DIR


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by creation time (local time): ``20261125-140501-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def run_dir_for(runs_dir: str | Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return Path(runs_dir) / run_id


def state_db_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STATE_DB


def record_store_url(run_dir: str | Path, url: str) -> None:
    """Note in the run folder where its store is (the URL without a password: that comes
    from PGPASSWORD or ~/.pgpass when the run is reopened)."""
    (Path(run_dir) / STORE_URL_FILE).write_text(redact_url(url) + "\n")


def run_store_location(run_dir: str | Path) -> str | None:
    """Where the run folder's store is: its ``store.url``, else its ``state.db`` (None:
    neither, not a run folder)."""
    run_dir = Path(run_dir)
    url_file = run_dir / STORE_URL_FILE
    if url_file.is_file():
        return url_file.read_text().strip()
    if state_db_path(run_dir).is_file():
        return str(state_db_path(run_dir))
    return None


def init_run_dir(run_dir: str | Path) -> Path:
    """Create the run folder with ``worktrees/`` and ``logs/``; refuses an existing one."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        raise StoreError(f"run folder {run_dir} already exists")
    (run_dir / WORKTREES_DIR).mkdir(parents=True)
    (run_dir / LOGS_DIR).mkdir()
    return run_dir


# ------------------------------------------------------------------------ create


def create_run(
    store: Store,
    mission: "Mission",
    *,
    run_id: str,
    run_dir: str | Path,
    repo_path: str | Path,
    mission_branch: str,
    base_branch: str,
    base_commit: str = "",
    backend: str | None = None,
    now: float | None = None,
) -> m.Run:
    """Write the run, its issues, tasks, dependencies and file operations in ONE transaction.

    Tasks without dependencies start ``ready``, the others ``pending``. ``spec_json`` of
    each task is its SisTask as JSON (read it back with :func:`task_spec`).
    """
    now = time.time() if now is None else now
    config = mission.config
    sis_of_issue = {sis.issue.id: path for path, sis in mission.sis}
    with store.write():
        run = m.Run.create(
            id=run_id,
            mission_name=mission.name,
            mission_path=str(mission.root),
            run_dir=str(Path(run_dir).absolute()),
            repo_path=str(repo_path),
            source_repo=str(mission.repo_path),
            base_branch=base_branch,
            base_commit=base_commit,
            mission_branch=mission_branch,
            backend=backend or config.agents.backend,
            status="created",
            config_json=config.model_dump_json(),
            mission_budget_usd=config.budget.mission_usd,
            retry_budget_usd=config.budget.retry_usd,
            pool_min=config.agents.min_implementers,
            pool_max=config.agents.max_implementers,
            pool_target=config.agents.min_implementers,
            created_at=now,
            updated_at=now,
            version=1,
        )
        issue_rows = []
        for issue in mission.issues:
            sis_path = sis_of_issue.get(issue.id)
            issue_rows.append(
                {
                    "run": run_id,
                    "issue_id": issue.id,
                    "title": issue.title,
                    "body": issue.body,
                    "sis_path": str(sis_path.relative_to(mission.root)) if sis_path else "",
                }
            )
        _insert_many(m.Issue, issue_rows)
        task_count = 0
        for _, sis in mission.sis:
            task_count += insert_tasks(run_id, sis.issue.id, sis.tasks, now=now, version=1,
                                       approval_gate=config.policies.approve)
        store.add_event(run_id, "run.created", f"run {run_id} of mission {mission.name!r}", ts=now,
                        tasks=task_count, issues=len(issue_rows))
    return run


def _insert_many(model: type[m.BaseModel], rows: list[dict]) -> None:
    # SQLite caps bound variables per statement; insert in slices.
    for start in range(0, len(rows), 100):
        model.insert_many(rows[start : start + 100]).execute()


def insert_tasks(run_id: str, issue_id: str, tasks: list[SisTask], *, now: float, version: int,
                 approval_gate: Collection[str] = ()) -> int:
    """Insert tasks with their dependencies and file operations (call inside ``store.write``).

    Used by :func:`create_run` and by planning when a planner returns the SIS of an issue
    during the run. Returns the number of tasks inserted.
    """
    task_rows, dep_rows, op_rows = [], [], []
    for task in tasks:
        row = task_row(run_id, issue_id, task, now, approval_gate)
        row["version"] = version
        task_rows.append(row)
        dep_rows += [{"run": run_id, "task_id": task.task_id, "depends_on": d} for d in task.dependencies]
        op_rows += [
            {"run": run_id, "task_id": task.task_id, "seq": seq, "op": op.op, "path": op.path}
            for seq, op in enumerate(task.file_operations)
        ]
    _insert_many(m.Task, task_rows)
    _insert_many(m.Dependency, dep_rows)
    _insert_many(m.FileOperation, op_rows)
    return len(task_rows)


def task_row(run_id: str, issue_id: str, task: SisTask, now: float, approval_gate: Collection[str] = ()) -> dict:
    """The Task row of a SIS task: ``ready`` without dependencies (``awaiting_approval`` when
    the approval gate names it, as the scheduler places it), else ``pending``."""
    gated = needs_approval(approval_gate, task.priority.value, task.task_id, task.domain)
    return {
        "run": run_id,
        "task_id": task.task_id,
        "issue_id": issue_id,
        "title": task.title,
        "description": task.description,
        "priority": task.priority.value,
        "domain": task.domain,
        "estimated_duration_minutes": task.estimated_duration_minutes,
        "estimated_input_tokens": task.estimated_tokens.input,
        "estimated_output_tokens": task.estimated_tokens.output,
        "model_hint": task.model_hint,
        "spec_json": task.model_dump_json(),
        "status": "pending" if task.dependencies else "awaiting_approval" if gated else "ready",
        "attention_reason": "awaiting approval ([policies] approve)" if gated and not task.dependencies else "",
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


_task_row = task_row  # the name planning used first


# -------------------------------------------------------------------------- read


@dataclass
class RunTask:
    """A task row with its parsed SIS task and its dependencies (in SIS order)."""

    row: m.Task
    spec: SisTask
    dependencies: list[str] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return self.row.task_id


def task_spec(row: m.Task) -> SisTask:
    return SisTask.model_validate_json(row.spec_json)


def load_run_tasks(store: Store, run_id: str) -> list[RunTask]:
    """Every task of the run in creation order, with its spec and dependencies."""
    with store.read():
        rows = list(m.Task.select().where(m.Task.run == run_id).order_by(m.Task.id))
        deps: dict[str, list[str]] = {}
        for dep in m.Dependency.select().where(m.Dependency.run == run_id).order_by(m.Dependency.id):
            deps.setdefault(dep.task_id, []).append(dep.depends_on)
    return [RunTask(row=r, spec=task_spec(r), dependencies=deps.get(r.task_id, [])) for r in rows]


def load_file_operations(store: Store, run_id: str) -> dict[str, list[tuple[str, str]]]:
    """task id -> [(op, path)] in SIS order."""
    out: dict[str, list[tuple[str, str]]] = {}
    query = m.FileOperation.select().where(m.FileOperation.run == run_id).order_by(
        m.FileOperation.task_id, m.FileOperation.seq
    )
    for row in query:
        out.setdefault(row.task_id, []).append((row.op, row.path))
    return out


# -------------------------------------------------------------------------- list


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    run_dir: Path
    mission: str = ""
    status: str = ""
    tasks_done: int = 0
    tasks_total: int = 0
    spend_usd: float = 0.0
    created_at: float | None = None
    error: str = ""  # why the store could not be read; empty when it was


def _summaries(db: pw.Database, run_ids: list[str] | None, run_dir: Path | None = None) -> list[RunSummary]:
    """Summaries of ``run_ids`` (None: every run in the store) read through ``db``, a
    connection of its own: ``db.execute`` compiles each query for it, so the models stay
    bound to the process's open store."""
    query = m.Run.select(m.Run.id, m.Run.mission_name, m.Run.status, m.Run.created_at, m.Run.run_dir)
    if run_ids is not None:
        query = query.where(m.Run.id.in_(run_ids))
    out = []
    with snapshot(db):
        for run_id, mission, status, created_at, stored_dir in db.execute(query.order_by(m.Run.created_at)).fetchall():
            done = pw.fn.SUM(pw.Case(None, [(m.Task.status == "done", 1)], 0))
            total, done = db.execute(
                m.Task.select(pw.fn.COUNT(m.Task.id), pw.fn.COALESCE(done, 0)).where(m.Task.run == run_id)
            ).fetchone()
            (spend,) = db.execute(
                m.Attempt.select(pw.fn.COALESCE(pw.fn.SUM(m.Attempt.cost_usd), 0)).where(m.Attempt.run == run_id)
            ).fetchone()
            out.append(RunSummary(run_id, run_dir or Path(stored_dir), mission, status, int(done), int(total),
                                  float(spend), created_at))
    return out


def read_run_summary(run_dir: str | Path) -> RunSummary:
    """Summarise the run in ``run_dir`` from its store, read through a connection of its
    own (so it neither rebinds the process's open store nor takes a write lock; a SQLite
    file is opened read-only); a store that cannot be read gives a summary saying why."""
    run_dir = Path(run_dir)
    location = run_store_location(run_dir)
    if location is not None and "://" in location:
        db: pw.Database = _postgresql_reader(location)
        wanted: list[str] | None = [run_dir.name]
    else:
        # SQLite-only: the file opened read-only by URI (the store's own opener would create it).
        db = pw.SqliteDatabase(f"{state_db_path(run_dir).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        wanted = None  # a run folder's SQLite store holds its one run, whatever its name
    try:
        db.connect()
    except pw.DatabaseError as exc:
        return RunSummary(run_dir.name, run_dir, error=" ".join(str(exc).split()))
    try:
        found = _summaries(db, wanted, run_dir)
        if not found:
            return RunSummary(run_dir.name, run_dir, error="no run in this store")
        return found[0]
    except pw.DatabaseError as exc:
        return RunSummary(run_dir.name, run_dir, error=f"unreadable store: {' '.join(str(exc).split())}")
    finally:
        db.close()


def _postgresql_reader(url: str) -> pw.Database:
    from playhouse.db_url import connect

    return connect(url)


def list_store_runs(url: str) -> list[RunSummary]:
    """One summary per run in the store at ``url`` (a PostgreSQL store may hold many),
    oldest first. StoreError when it cannot be read."""
    if store_backend_of(url) != "postgresql":
        raise StoreError(f"{url}: runs --store takes a postgresql:// URL (a SQLite store is a run folder)")
    db = _postgresql_reader(url)
    try:
        db.connect()
        return _summaries(db, None)
    except pw.DatabaseError as exc:
        raise StoreError(f"{redact_url(url)}: cannot read the store: {' '.join(str(exc).split())}") from None
    finally:
        db.close()


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """One summary per run folder (a folder holding state.db or store.url), oldest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return [
        read_run_summary(child)
        for child in sorted(runs_dir.iterdir())
        if child.is_dir() and run_store_location(child) is not None
    ]


def summary_as_json(summary: RunSummary) -> str:
    data = summary.__dict__ | {"run_dir": str(summary.run_dir)}
    return json.dumps(data, sort_keys=True)


# -------------------------------------------------------------------------- the demo's captures


def move_run_start(store: Store, run_id: str, ts: float) -> None:
    """Date the run's creation (its row, its tasks, its events so far) at ``ts``: the demo
    capture moves a run created on the wall clock onto its virtual clock."""
    with store.write(run_id):
        m.Run.update(created_at=ts, updated_at=ts).where(m.Run.id == run_id).execute()
        m.Task.update(created_at=ts, updated_at=ts).where(m.Task.run == run_id).execute()
        m.Event.update(ts=ts).where(m.Event.run == run_id).execute()


def copy_sqlite_store(source: str | Path, target: str | Path) -> None:
    """A consistent copy of the SQLite store ``source`` at ``target`` (SQLite's online
    backup, safe while a coordinator writes ``source``)."""
    src, dst = pw.SqliteDatabase(str(source)), pw.SqliteDatabase(str(target))
    try:
        src.connection().backup(dst.connection())  # peewee's connection is the sqlite3 one
    finally:
        dst.close()
        src.close()
