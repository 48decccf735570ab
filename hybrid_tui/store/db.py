"""Opening a store, the write transaction, schema version, and the common queries.

Room: store. Persistence only: callers (runtime, tui, cli) decide *what* to write.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Protocol

import peewee as pw
from playhouse.db_url import connect

from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import Redactor

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 30_000,
    "foreign_keys": 1,
    # 64 MB of page cache (the pages are allocated as they are read, not up front). A run's
    # file grows ~2.5 kB a task and tasks are dispatched by score, not in table order, so
    # with 16 MB a 50,000-task run (120 MB) re-read from the OS some pages of the task table
    # and its indexes at nearly every update: 3.9 reads a task at 50k against 1.1 at 1k
    # (2.2 with 64 MB), system time 0.055 -> 0.04 ms a task (bench/scaling.py).
    "cache_size": -64_000,
}


_REDACTOR = Redactor()
_WRITES = frozenset("IURiur")  # INSERT, UPDATE, REPLACE (what peewee and this room's SQL start with)


class _RedactingCursor(sqlite3.Cursor):
    """Every statement's parameters pass the one redactor: whichever query writes a text (an
    event, a failure message, a validation's output as feedback, an attention reason), a
    secret in it never reaches the database or its WAL."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if parameters and sql.lstrip()[:1] in _WRITES:  # a read's parameters are keys: no text enters
            parameters = _REDACTOR.params(parameters, _REDACTOR.needles())
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        needles = _REDACTOR.needles()
        return super().executemany(sql, (_REDACTOR.params(row, needles) for row in seq_of_parameters))


class _RedactingConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _RedactingCursor) -> sqlite3.Cursor:  # Connection.execute() comes here too
        return super().cursor(factory)


_CREATION_WAIT_SECONDS = 5.0


def _being_created(path: Path) -> bool:
    """False for a store file that is empty and stays so: a run being created makes its file
    (empty) a moment before it writes the header, so an empty file is given a few seconds."""
    deadline = time.monotonic() + _CREATION_WAIT_SECONDS
    while True:
        try:
            if path.stat().st_size > 0 or path.with_name(path.name + "-wal").exists():
                return True
        except OSError:
            return True  # gone: the open below says so
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


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

_LAST_EVENT_SQL = f'SELECT max("seq") FROM "{m.Event._meta.table_name}"'


class _EventDataEncoder(json.JSONEncoder):
    """``json.JSONEncoder(default=str, sort_keys=True)``; ``encode`` of a dict reuses one C
    encoder instead of building one per call (most of the cost for an event's few fields).

    That C encoder has no circular-reference markers, so it holds no state and threads may
    share it; whatever it fails on (a circular value, a ``str()`` that raises) is encoded
    again the standard way, which raises the standard error."""

    def __init__(self) -> None:
        super().__init__(default=str, sort_keys=True)
        self._encode_dict = None
        try:
            from json.encoder import c_make_encoder, encode_basestring_ascii
        except ImportError:  # pragma: no cover - CPython always has it
            return
        if c_make_encoder is None:  # pragma: no cover
            return
        try:
            encode = c_make_encoder(None, self.default, encode_basestring_ascii, None, self.key_separator,
                                    self.item_separator, True, False, True)
            probe = {"b": [1, 2.5, None, True, "\u00e9\"x", float("nan")], "a": {"z": Path("p"), "y": ()},
                     "c": {3: 1, 10: 2}}
            if "".join(encode(probe, 0)) == super().encode(probe):
                self._encode_dict = encode
        except Exception:  # pragma: no cover - another Python's private signature
            pass

    def encode(self, o: Any) -> str:
        if type(o) is dict and self._encode_dict is not None:
            try:
                return "".join(self._encode_dict(o, 0))
            except Exception:
                pass
        return super().encode(o)


EVENT_DATA_ENCODER = _EventDataEncoder()  # built once: json.dumps(**options) builds one per call


_PENDING_CONTROL_SQL = (
    f'SELECT 1 FROM "{m.Control._meta.table_name}" WHERE "{m.Control.run.column_name}" = ? '
    "AND \"status\" = 'pending' LIMIT 1"
)
_UPDATE_SQL_CACHE: dict[tuple, str] = {}
_INSERT_SQL_CACHE: dict[tuple, tuple[str, tuple[str, ...]]] = {}


def _column(model: type[pw.Model], name: str) -> str:
    return f'"{model._meta.fields[name].column_name}"'


def _update_sql(model: type[pw.Model], names: tuple[str, ...], increments: tuple[str, ...], keys: tuple[str, ...]) -> str:
    cache_key = (model, names, increments, keys)
    sql = _UPDATE_SQL_CACHE.get(cache_key)
    if sql is None:
        sets = [f"{_column(model, n)} = ?" for n in names] + [f"{_column(model, n)} = {_column(model, n)} + ?" for n in increments]
        sql = (f'UPDATE "{model._meta.table_name}" SET ' + ", ".join(sets)
               + " WHERE " + " AND ".join(f"{_column(model, k)} = ?" for k in keys))
        _UPDATE_SQL_CACHE[cache_key] = sql
    return sql


def _insert_sql(model: type[pw.Model], names: tuple[str, ...], or_replace: bool = False) -> tuple[str, tuple[str, ...]]:
    """INSERT of ``names`` plus every other field that has a Python-side default (peewee
    fills those in; the tables have no SQL defaults)."""
    cache_key = (model, names, or_replace)
    found = _INSERT_SQL_CACHE.get(cache_key)
    if found is None:
        given = set(names)
        defaulted = tuple(f.name for f in model._meta.sorted_fields
                          if f.name not in given and f.default is not None and not isinstance(f, pw.AutoField))
        columns = names + defaulted
        verb = "INSERT OR REPLACE" if or_replace else "INSERT"
        sql = (f'{verb} INTO "{model._meta.table_name}" (' + ", ".join(_column(model, n) for n in columns)
               + ") VALUES (" + ", ".join("?" for _ in columns) + ")")
        found = _INSERT_SQL_CACHE[cache_key] = (sql, defaulted)
    return found


def _delete_sql(model: type[pw.Model], keys: tuple[str, ...]) -> str:
    cache_key = (model, "delete", keys)
    sql = _UPDATE_SQL_CACHE.get(cache_key)
    if sql is None:
        sql = _UPDATE_SQL_CACHE[cache_key] = (f'DELETE FROM "{model._meta.table_name}" WHERE '
                                              + " AND ".join(f"{_column(model, k)} = ?" for k in keys))
    return sql


_STATIC_DEFAULTS: dict[tuple, tuple] = {}


def _defaults(model: type[pw.Model], names: tuple[str, ...]) -> tuple:
    """The model defaults of ``names``; kept once computed when none is a callable (every
    staged insert of the runtime needs them)."""
    found = _STATIC_DEFAULTS.get((model, names))
    if found is not None:
        return found
    fields = model._meta.fields
    defaults = [fields[n].default for n in names]
    if any(callable(d) for d in defaults):
        return tuple(d() if callable(d) else d for d in defaults)
    found = _STATIC_DEFAULTS[(model, names)] = tuple(defaults)
    return found


class Stager(Protocol):
    """Rows held back inside a write transaction and written just before it commits.

    The runtime writes several versions of the same rows in one transaction (a task goes
    running -> validating -> integrating -> done); holding them until the commit writes each
    row once and batches the inserts. Staged rows are visible in the database only once
    :meth:`flush_staged` ran (at the outermost :meth:`Store.write`'s commit)."""

    def flush_staged(self) -> None:
        """Write everything staged (called inside the open transaction)."""

    def drop_staged(self) -> None:
        """Forget everything staged (the transaction rolled back)."""


class StagedWrites:
    """Writes held until the commit. Updates are merged per row (the last value of each field
    wins, increments add up) and written as one ``executemany`` per (table, field set);
    inserts and deletes keep their order (runs of the same statement become one
    ``executemany``) and are written before the merged updates: merge the rows of a table,
    or keep them in order, not both. Outside a transaction each write happens at once."""

    def __init__(self, store: Store):
        self.store = store
        self._updates: list[tuple[type[pw.Model], tuple, tuple, dict[str, Any], dict[str, Any] | None]] = []
        self._statements: list[tuple[str, tuple]] = []

    def update(self, model: type[pw.Model], fields: dict[str, Any], *, where: dict[str, Any],
               increments: dict[str, Any] | None = None) -> None:
        """``UPDATE model SET fields (, col = col + increment) WHERE where``, merged per row."""
        if self.store.db.transaction_depth() == 0:
            self.store.update_rows(model, fields, where=where, increments=increments)
            return
        self._updates.append((model, tuple(where), tuple(where.values()), fields, increments))

    def insert(self, model: type[pw.Model], fields: dict[str, Any], *, or_replace: bool = False) -> None:
        if not self.store.is_sqlite or self.store.db.transaction_depth() == 0:
            self.store.insert_row(model, fields, or_replace=or_replace)
            return
        sql, defaulted = _insert_sql(model, tuple(fields), or_replace)
        self._statements.append((sql, (*fields.values(), *_defaults(model, defaulted))))

    def delete(self, model: type[pw.Model], *, where: dict[str, Any]) -> None:
        if not self.store.is_sqlite or self.store.db.transaction_depth() == 0:
            self.store.delete_rows(model, where=where)
            return
        self._statements.append((_delete_sql(model, tuple(where)), tuple(where.values())))

    def flush_staged(self) -> None:
        if self._statements:
            statements, self._statements = self._statements, []
            cursor = self.store.db.cursor()
            for sql, run in itertools.groupby(statements, key=operator.itemgetter(0)):  # in order
                cursor.executemany(sql, [params for _, params in run])
        if not self._updates:
            return
        ops, self._updates = self._updates, []
        merged: dict[tuple, tuple[dict[str, Any], dict[str, Any]]] = {}
        for model, key_names, key_values, fields, increments in ops:
            row = merged.get((model, key_names, key_values))
            if row is None:
                row = merged[(model, key_names, key_values)] = ({}, {})
            row[0].update(fields)
            if increments:
                for name, step in increments.items():
                    row[1][name] = row[1].get(name, 0) + step
        groups: dict[tuple, list[tuple]] = {}
        for (model, key_names, key_values), (fields, increments) in merged.items():
            shape = (model, tuple(fields), tuple(increments), key_names)
            groups.setdefault(shape, []).append((*fields.values(), *increments.values(), *key_values))
        for (model, names, increments, keys), rows in groups.items():
            self.store.update_many(model, names, keys, rows, increments=increments)

    def drop_staged(self) -> None:
        self._updates.clear()
        self._statements.clear()


class Store:
    """A connection to one database plus the write helpers every layer uses.

    Every read-then-write goes through :meth:`write`, which on SQLite opens the
    transaction with ``BEGIN IMMEDIATE`` (a deferred transaction that later upgrades to a
    write fails with "database is locked" whatever the busy timeout). Writes may be staged
    (:attr:`staged`, or any registered :class:`Stager`): they reach the database just before
    the outermost transaction commits, and are forgotten when it rolls back. Staging is for
    the thread that owns the transaction (the runtime's loop thread).
    """

    def __init__(self, db: pw.Database, url: str):
        self.db = db
        self.url = url
        self.is_sqlite = isinstance(db, pw.SqliteDatabase)
        self.staged = StagedWrites(self)
        self._stagers: list[Stager] = [self.staged]

    def add_stager(self, stager: Stager) -> None:
        self._stagers.append(stager)

    def remove_stager(self, stager: Stager) -> None:
        if stager in self._stagers:
            self._stagers.remove(stager)

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
            if not outermost:
                yield version
                return
            try:
                yield version
                for stager in self._stagers:
                    stager.flush_staged()
            except BaseException:
                for stager in self._stagers:
                    stager.drop_staged()
                raise

    def read(self):
        """A read snapshot (consistent view across several queries)."""
        return self.db.atomic()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    # -- hot-path row writes ------------------------------------------------------------
    def update_rows(self, model: type[pw.Model], fields: dict[str, Any], *, where: dict[str, Any],
                    increments: dict[str, Any] | None = None) -> None:
        """``UPDATE model SET fields (, col = col + increment) WHERE every where-field equals``.

        The runtime writes a few task/agent/attempt rows per task lifecycle: on SQLite one
        cached statement per field set (peewee compiles each query afresh, ~0.1 ms each).
        Values must be plain column values (str, int, float, None)."""
        increments = increments or {}
        if not self.is_sqlite:
            updates: dict[Any, Any] = dict(fields)
            for name, step in increments.items():
                updates[name] = getattr(model, name) + step
            condition = None
            for name, value in where.items():
                term = getattr(model, name) == value
                condition = term if condition is None else condition & term
            model.update(updates).where(condition).execute()
            return
        sql = _update_sql(model, tuple(fields), tuple(increments), tuple(where))
        self.db.execute_sql(sql, (*fields.values(), *increments.values(), *where.values()))

    def update_many(self, model: type[pw.Model], names: tuple[str, ...], keys: tuple[str, ...],
                    rows: list[tuple], *, increments: tuple[str, ...] = ()) -> None:
        """One UPDATE per row (values of ``names``, then of ``increments``, added to the
        column, then of ``keys``), as one executemany."""
        if not rows:
            return
        if not self.is_sqlite:
            split = len(names) + len(increments)
            for row in rows:
                self.update_rows(model, dict(zip(names, row)), where=dict(zip(keys, row[split:])),
                                 increments=dict(zip(increments, row[len(names):split])))
            return
        cursor = self.db.cursor()
        cursor.executemany(_update_sql(model, names, increments, keys), rows)

    def delete_rows(self, model: type[pw.Model], *, where: dict[str, Any]) -> None:
        if not self.is_sqlite:
            condition = None
            for name, value in where.items():
                term = getattr(model, name) == value
                condition = term if condition is None else condition & term
            model.delete().where(condition).execute()
            return
        self.db.execute_sql(_delete_sql(model, tuple(where)), tuple(where.values()))

    def insert_row(self, model: type[pw.Model], fields: dict[str, Any], *, or_replace: bool = False) -> int:
        """Insert one row (fields not given take their model default); returns its id.
        ``or_replace``: a row with the same unique key is replaced."""
        if not self.is_sqlite:
            query = model.insert(**fields)
            return (query.on_conflict_replace() if or_replace else query).execute()
        sql, defaulted = _insert_sql(model, tuple(fields), or_replace)
        return self.db.execute_sql(sql, (*fields.values(), *_defaults(model, defaulted))).lastrowid

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
            data_json=EVENT_DATA_ENCODER.encode(data),
        )
        if not self.is_sqlite:
            return m.Event.create(**fields)
        # Several events per task lifecycle: a pre-built INSERT skips peewee's per-call SQL
        # compilation (the row object is built without a query).
        cursor = self.db.execute_sql(_INSERT_EVENT_SQL, tuple(fields.values()))
        return m.Event(seq=cursor.lastrowid, **fields)

    def add_events(self, rows: list[tuple]) -> list[int]:
        """Insert events (tuples in ``_EVENT_COLUMNS`` order, ``data_json`` already encoded) as
        one statement batch; returns their ``seq`` numbers. Call inside a write transaction
        (on SQLite the numbers follow the table's last one)."""
        if not rows:
            return []
        if not self.is_sqlite:
            return [m.Event.insert(**dict(zip(_EVENT_COLUMNS, row))).execute() for row in rows]
        last = self.db.execute_sql(_LAST_EVENT_SQL).fetchone()[0] or 0
        # SQLite numbers a row of a table without AUTOINCREMENT one past the largest ``seq``
        # in it: inside this transaction the rows get last+1, last+2, ... in order, the
        # numbers are not bound per row (no tuple rebuilt per event).
        cursor = self.db.cursor()
        cursor.executemany(_INSERT_EVENT_SQL, rows)
        end = last + len(rows)
        if cursor.execute("SELECT last_insert_rowid()").fetchone()[0] != end:  # the rule above broke: say so
            raise StoreError(f"event numbering: expected the last new event to be {end}")
        return list(range(last + 1, end + 1))

    def enqueue_control(self, run_id: str, command: str, source: str = "cli", **args: Any) -> int:
        """Queue an operator command for the coordinator; returns its id."""
        with self.write():
            row = m.Control.create(
                run=run_id, ts=time.time(), command=command, args_json=json.dumps(args), source=source
            )
        return row.id

    def pending_controls(self, run_id: str) -> list[m.Control]:
        if self.is_sqlite:  # polled every loop iteration: a cheap probe first, usually empty
            probe = self.db.execute_sql(_PENDING_CONTROL_SQL, (run_id,)).fetchone()
            if probe is None:
                return []
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
                raise StoreError(f"it is corrupt (SQLite quick_check: {' '.join(str(verdict).split())})")
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
    _add_later_columns(db)


# Columns added to schema version 1 after stores were made with it: added (empty) at open.
_LATER_COLUMNS = ((m.Attempt, "session_id"),)


def _add_later_columns(db: pw.Database) -> None:
    for model, name in _LATER_COLUMNS:
        table = model._meta.table_name
        if name in {column.name for column in db.get_columns(table)}:
            continue
        field = model._meta.fields[name]
        try:
            with db.atomic():
                column_type = db.field_types.get(field.field_type, field.field_type)
                db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{field.column_name}" '
                               f"{column_type}({field.max_length}) NOT NULL DEFAULT ''")
        except pw.DatabaseError as exc:
            raise StoreError(f"cannot add the column {table}.{name} it lacks: {exc}") from None


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
        if not create and path.is_file() and not _being_created(path):
            # Checked before connecting: switching an empty file to WAL would write a header.
            raise StoreError(f"{path}: cannot open the store: it is empty, not a hybrid-tui store")
        text = sqlite_url(path)
    if text.startswith("sqlite"):
        db = connect(text, pragmas=SQLITE_PRAGMAS, factory=_RedactingConnection)
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
