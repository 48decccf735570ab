"""Opening a store, the write transaction, schema version, and the common queries.

Room: store. Persistence only: callers (runtime, tui, cli) decide *what* to write.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import peewee as pw
from playhouse.db_url import connect

from . import models as m

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 30_000,
    "foreign_keys": 1,
    "cache_size": -16_000,
}


class StoreError(Exception):
    """A store that cannot be used: corrupt, from a newer version, or unreachable."""


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


# Pre-built SQLite statements for the two hottest writes (parameters in this order).
_BUMP_VERSION_SQL = (
    f'UPDATE "{m.Run._meta.table_name}" SET "version" = "version" + 1, "updated_at" = ? '
    'WHERE "id" = ? RETURNING "version"'
)
_EVENT_COLUMNS = ("run", "ts", "kind", "level", "task_id", "attempt", "agent_id", "message", "data_json")
_INSERT_EVENT_SQL = (
    f'INSERT INTO "{m.Event._meta.table_name}" ('
    + ", ".join(f'"{m.Event._meta.fields[name].column_name}"' for name in _EVENT_COLUMNS)
    + ") VALUES (" + ", ".join("?" for _ in _EVENT_COLUMNS) + ")"
)


class Store:
    """A connection to one database plus the write helpers every layer uses.

    Every read-then-write goes through :meth:`write`, which on SQLite opens the
    transaction with ``BEGIN IMMEDIATE`` (a deferred transaction that later upgrades to a
    write fails with "database is locked" whatever the busy timeout).
    """

    def __init__(self, db: pw.Database, url: str):
        self.db = db
        self.url = url
        self.is_sqlite = isinstance(db, pw.SqliteDatabase)

    # -- transactions -----------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, run_id: str | None = None) -> Iterator[int]:
        """A write transaction; yields the new change version of ``run_id`` (0 without one)."""
        # Decided before entering: peewee 4 does not count savepoints in transaction_depth().
        outermost = self.db.transaction_depth() == 0
        ctx = self.db.atomic("IMMEDIATE") if self.is_sqlite else self.db.atomic()
        with ctx:
            version = 0
            if run_id is not None:
                if outermost and self.is_sqlite:
                    # Every state change runs this: one pre-built statement, not peewee's
                    # UPDATE + SELECT compiled afresh each time (bench/: ~40% of a transition).
                    rows = self.db.execute_sql(_BUMP_VERSION_SQL, (time.time(), run_id)).fetchall()
                    version = rows[0][0] if rows else 0
                else:
                    if outermost:
                        m.Run.update(version=m.Run.version + 1, updated_at=time.time()).where(
                            m.Run.id == run_id
                        ).execute()
                    version = m.Run.select(m.Run.version).where(m.Run.id == run_id).scalar() or 0
            yield version

    def read(self):
        """A read snapshot (consistent view across several queries)."""
        return self.db.atomic()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    # -- events and control -----------------------------------------------------------
    def add_event(
        self,
        run_id: str,
        kind: str,
        message: str = "",
        *,
        level: str = "info",
        task_id: str | None = None,
        attempt: int | None = None,
        agent_id: str | None = None,
        ts: float | None = None,
        **data: Any,
    ) -> m.Event:
        fields = dict(
            run=run_id,
            ts=time.time() if ts is None else ts,
            kind=kind,
            level=level,
            task_id=task_id,
            attempt=attempt,
            agent_id=agent_id,
            message=message,
            data_json=json.dumps(data, default=str, sort_keys=True),
        )
        if not self.is_sqlite:
            return m.Event.create(**fields)
        # Several events per task lifecycle: a pre-built INSERT skips peewee's per-call SQL
        # compilation (the row object is built without a query).
        cursor = self.db.execute_sql(_INSERT_EVENT_SQL, tuple(fields.values()))
        return m.Event(seq=cursor.lastrowid, **fields)

    def enqueue_control(self, run_id: str, command: str, source: str = "cli", **args: Any) -> int:
        """Queue an operator command for the coordinator; returns its id."""
        with self.write():
            row = m.Control.create(
                run=run_id, ts=time.time(), command=command, args_json=json.dumps(args), source=source
            )
        return row.id

    def pending_controls(self, run_id: str) -> list[m.Control]:
        return list(
            m.Control.select()
            .where((m.Control.run == run_id) & (m.Control.status == "pending"))
            .order_by(m.Control.id)
        )

    def get_run(self, run_id: str) -> m.Run:
        try:
            return m.Run.get_by_id(run_id)
        except m.Run.DoesNotExist:
            raise StoreError(f"unknown run {run_id!r}") from None


def _check_schema(db: pw.Database, *, create: bool) -> None:
    """Create the tables of a new store, or check the schema version of an existing one."""
    is_sqlite = isinstance(db, pw.SqliteDatabase)
    # IMMEDIATE: two processes opening the same new store must not both create it.
    with db.atomic("IMMEDIATE") if is_sqlite else db.atomic():
        if not m.SchemaVersion.table_exists():
            if db.get_tables():
                raise StoreError("it is not a hybrid-tui store (no schema_version table)")
            if not create:
                raise StoreError("it is empty, not a hybrid-tui store")
            db.create_tables(m.ALL_MODELS, safe=True)
            m.SchemaVersion.create(version=m.SCHEMA_VERSION, created_at=time.time())
            return
        row = m.SchemaVersion.select().order_by(m.SchemaVersion.version.desc()).first()
        if is_sqlite:
            # A damaged page may not show until a query touches it; check the whole file
            # once at open (fast: it reads each page once) rather than fail mid-run.
            verdict = db.execute_sql("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise StoreError(f"it is corrupt (SQLite quick_check: {verdict})")
    found = row.version if row else None
    if found is None:
        raise StoreError("it has an empty schema_version table; it is not a hybrid-tui store")
    if found > m.SCHEMA_VERSION:
        raise StoreError(
            f"its schema version {found} is newer than this hybrid-tui supports "
            f"({m.SCHEMA_VERSION}); upgrade hybrid-tui"
        )
    if found < m.SCHEMA_VERSION:
        raise StoreError(f"its schema version {found} is older than {m.SCHEMA_VERSION} and no migration exists")


def open_store(url: str | Path, *, create: bool = True) -> Store:
    """Open (and by default create) a store.

    ``url`` is a peewee database URL (``sqlite:///abs/path.db``, ``postgresql://...``)
    or a plain file path, taken as SQLite. SQLite gets WAL, ``synchronous=NORMAL`` and a
    30 s busy timeout. A store that is corrupt, not a hybrid-tui store, or from a newer
    schema raises StoreError naming the file. ``create=False`` refuses to create one.

    The models are bound to the opened database through ``models.database_proxy``, which
    is process-wide: one open store per process (its connections are per thread).
    """
    text = str(url)
    shown = text
    if "://" not in text:
        path = Path(text)
        if not create and not path.exists():
            raise StoreError(f"{path}: no such store")
        text = sqlite_url(path)
    if text.startswith("sqlite"):
        db = connect(text, pragmas=SQLITE_PRAGMAS)
    else:
        db = connect(text)
    m.database_proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _check_schema(db, create=create)
    except StoreError as exc:
        db.close()
        raise StoreError(f"{shown}: cannot open the store: {exc}") from None
    except pw.OperationalError as exc:  # e.g. a missing folder, a locked file, a server down
        db.close()
        raise StoreError(f"{shown}: cannot open the store: {exc}") from None
    except pw.DatabaseError as exc:
        db.close()
        raise StoreError(f"{shown}: cannot open the store: corrupt or not a database ({exc})") from None
    return Store(db, text)
