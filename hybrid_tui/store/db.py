"""Opening a store, the write transaction, schema version, and the common queries.

Room: store. Persistence only: callers (runtime, tui, cli) decide *what* to write.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import operator
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Protocol
from urllib.parse import urlsplit, urlunsplit

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
_CHANGES = _WRITES | frozenset("Dd")  # and DELETE


class _RedactingCursor(sqlite3.Cursor):
    """Every statement's parameters pass the one redactor: whichever query writes a text (an
    event, a failure message, a validation's output as feedback, an attention reason), a
    secret in it never reaches the database or its WAL. A batch's strings are searched in one
    pass (:meth:`Redactor.rows`): the staged writes of a loop turn are a few batches."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        verb = sql.lstrip()[:1]
        if verb in _CHANGES and not self.connection.in_transaction:
            refuse_unwritable(self.connection.store_files)  # a write in a transaction of its own
        if parameters and verb in _WRITES:  # a read's parameters are keys: no text enters
            parameters = _REDACTOR.params(parameters, _REDACTOR.needles())
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        if not self.connection.in_transaction:
            refuse_unwritable(self.connection.store_files)
        return super().executemany(sql, _REDACTOR.rows(seq_of_parameters, _REDACTOR.needles()))


def _redacting_pg_cursor() -> type:
    """The PostgreSQL twin of :class:`_RedactingCursor` (psycopg is imported only when a
    PostgreSQL store is opened)."""
    import psycopg

    class RedactingPgCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            if params and (not isinstance(query, str) or query.lstrip()[:1] in _WRITES):
                params = _REDACTOR.params(params, _REDACTOR.needles())
            return super().execute(query, params, **options)

        def executemany(self, query: Any, params_seq: Any, **options: Any) -> Any:
            return super().executemany(query, _REDACTOR.rows(params_seq, _REDACTOR.needles()), **options)

    return RedactingPgCursor


class _RedactingConnection(sqlite3.Connection):
    """A SQLite connection whose statements go through :class:`_RedactingCursor`. A write
    outside ``Store.write`` (a plain update in a transaction of its own, such as the
    coordinator's heartbeat) first checks the store's files: see :func:`refuse_unwritable`."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.store_files = _database_files(str(database))

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


# Pre-built statements for the hottest writes, built once per placeholder style (``?`` on
# SQLite, ``%s`` on PostgreSQL): peewee compiles each query afresh (~0.1 ms each).
_EVENT_COLUMNS = ("run", "ts", "kind", "level", "task_id", "attempt", "agent_id", "message", "data_json")
_STATEMENT_CACHE: dict[tuple, Any] = {}


def _cached(key: tuple, build, rows: int = 1) -> Any:
    """``build()``, kept under ``key`` (multi-row statements of many rows are built afresh:
    one per row count would pile up)."""
    found = _STATEMENT_CACHE.get(key)
    if found is None:
        found = build()
        if rows <= 16:
            _STATEMENT_CACHE[key] = found
    return found


def _bump_version_sql(param: str, notify: bool) -> str:
    """Bump the run's change counter and return it; on PostgreSQL it also queues a
    ``NOTIFY`` of the run id (delivered when the transaction commits, once however many
    transactions of it queue one)."""
    def build() -> str:
        update = (f'UPDATE "{m.Run._meta.table_name}" SET "version" = "version" + 1, "updated_at" = {param} '
                  f'WHERE "id" = {param} RETURNING "id", "version"')
        if not notify:
            return update
        return f"WITH bumped AS ({update}) SELECT version, pg_notify('{CHANGE_CHANNEL}', id) FROM bumped"
    return _cached(("bump", param, notify), build)


def _insert_event_sql(param: str, *, with_seq: bool = False, rows: int = 1, returning: bool = False) -> str:
    def build() -> str:
        names = (("seq",) if with_seq else ()) + _EVENT_COLUMNS
        one = "(" + ", ".join(param for _ in names) + ")"
        sql = (f'INSERT INTO "{m.Event._meta.table_name}" ('
               + ", ".join(f'"{m.Event._meta.fields[name].column_name}"' for name in names)
               + ") VALUES " + ", ".join(one for _ in range(rows)))
        return sql + ' RETURNING "seq"' if returning else sql
    return _cached(("event", param, with_seq, rows, returning), build, rows)


_LAST_EVENT_SQL = f'SELECT max("seq") FROM "{m.Event._meta.table_name}"'
# PostgreSQL: the next ``count`` numbers of the event table's sequence.
_NEXT_EVENT_SEQS_SQL = (f"SELECT nextval(pg_get_serial_sequence('\"{m.Event._meta.table_name}\"', 'seq')) "
                        "FROM generate_series(1, %s)")

_EVENT_TEXT_COLUMNS = tuple(i for i, name in enumerate(_EVENT_COLUMNS) if name in ("task_id", "agent_id"))
_EVENT_ATTEMPT_COLUMN = _EVENT_COLUMNS.index("attempt")


def _pg_event_row(row: tuple) -> tuple:
    """An event row as PostgreSQL's typed columns take it: SQLite stores a task id of 7 as
    the text '7' and an attempt of True as 1 (column affinity); PostgreSQL refuses both."""
    if all(row[i] is None or type(row[i]) is str for i in _EVENT_TEXT_COLUMNS) and (
            row[_EVENT_ATTEMPT_COLUMN] is None or type(row[_EVENT_ATTEMPT_COLUMN]) is int):
        return row
    out = list(row)
    for i in _EVENT_TEXT_COLUMNS:
        if out[i] is not None:
            out[i] = str(out[i])
    if out[_EVENT_ATTEMPT_COLUMN] is not None:
        out[_EVENT_ATTEMPT_COLUMN] = int(out[_EVENT_ATTEMPT_COLUMN])
    return tuple(out)


# LISTEN/NOTIFY channel of a PostgreSQL store: the payload is the run id that changed.
CHANGE_CHANNEL = "hybrid_tui_changes"

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


def _pending_control_sql(param: str) -> str:
    return _cached(("pending-control", param), lambda: (
        f'SELECT 1 FROM "{m.Control._meta.table_name}" WHERE "{m.Control.run.column_name}" = {param} '
        "AND \"status\" = 'pending' LIMIT 1"))


def _column(model: type[pw.Model], name: str) -> str:
    return f'"{model._meta.fields[name].column_name}"'


def _unique_key(model: type[pw.Model]) -> tuple[str, ...]:
    """The field names of the model's unique index (what an upsert conflicts on)."""
    for fields, unique in model._meta.indexes:
        if unique:
            return tuple(fields)
    raise StoreError(f"{model.__name__} has no unique index to upsert on")


def _update_sql(model: type[pw.Model], names: tuple[str, ...], increments: tuple[str, ...], keys: tuple[str, ...],
                param: str = "?") -> str:
    found = _STATEMENT_CACHE.get((model, names, increments, keys, param))
    if found is not None:  # the hot path: no closure built
        return found

    def build() -> str:
        sets = ([f"{_column(model, n)} = {param}" for n in names]
                + [f"{_column(model, n)} = {_column(model, n)} + {param}" for n in increments])
        return (f'UPDATE "{model._meta.table_name}" SET ' + ", ".join(sets)
                + " WHERE " + " AND ".join(f"{_column(model, k)} = {param}" for k in keys))
    return _cached((model, names, increments, keys, param), build)


def _insert_sql(model: type[pw.Model], names: tuple[str, ...], upsert: bool = False, param: str = "?",
                rows: int = 1, returning: str = "") -> tuple[str, tuple[str, ...]]:
    """INSERT of ``names`` plus every other field that has a Python-side default (peewee
    fills those in; the tables have no SQL defaults), ``rows`` rows in one statement.
    ``upsert``: a row with the same unique key gets the new values (``ON CONFLICT ... DO
    UPDATE``, the same text on SQLite and PostgreSQL)."""
    found = _STATEMENT_CACHE.get((model, names, upsert, param, rows, returning))
    if found is not None:  # the hot path: no closure built
        return found

    def build() -> tuple[str, tuple[str, ...]]:
        given = set(names)
        defaulted = tuple(f.name for f in model._meta.sorted_fields
                          if f.name not in given and f.default is not None and not isinstance(f, pw.AutoField))
        columns = names + defaulted
        one = "(" + ", ".join(param for _ in columns) + ")"
        sql = (f'INSERT INTO "{model._meta.table_name}" (' + ", ".join(_column(model, n) for n in columns)
               + ") VALUES " + ", ".join(one for _ in range(rows)))
        if upsert:
            key = _unique_key(model)
            sql += (" ON CONFLICT (" + ", ".join(_column(model, k) for k in key) + ") DO UPDATE SET "
                    + ", ".join(f"{_column(model, n)} = excluded.{_column(model, n)}" for n in columns if n not in key))
        if returning:
            sql += f" RETURNING {_column(model, returning)}"
        return sql, defaulted
    return _cached((model, names, upsert, param, rows, returning), build, rows)


def _delete_sql(model: type[pw.Model], keys: tuple[str, ...], param: str = "?") -> str:
    return _cached((model, "delete", keys, param), lambda: (
        f'DELETE FROM "{model._meta.table_name}" WHERE ' + " AND ".join(f"{_column(model, k)} = {param}" for k in keys)))


def _pg_type(model: type[pw.Model], name: str) -> str:
    """The PostgreSQL type of a column (for the casts of a multi-row update's VALUES list,
    whose untyped parameters would otherwise be taken as text)."""
    field = model._meta.fields[name]
    if isinstance(field, pw.ForeignKeyField):
        field = field.rel_field
    return pw.PostgresqlDatabase.field_types.get(field.field_type) or {
        "INT": "INTEGER", "AUTO": "INTEGER", "BIGAUTO": "BIGINT"}.get(field.field_type, field.field_type)


def _pg_update_many_sql(model: type[pw.Model], names: tuple[str, ...], increments: tuple[str, ...],
                        keys: tuple[str, ...], rows: int) -> str:
    """One UPDATE of ``rows`` rows: ``UPDATE t SET a = v.c0 ... FROM (VALUES ...) v WHERE
    t.key = v.key`` (PostgreSQL only)."""
    def build() -> str:
        columns = [*names, *increments, *keys]
        aliases = [f"c{i}" for i in range(len(columns))]
        # Casts on the first row type the whole VALUES list.
        first = "(" + ", ".join(f"CAST(%s AS {_pg_type(model, n)})" for n in columns) + ")"
        rest = "(" + ", ".join("%s" for _ in columns) + ")"
        table = f'"{model._meta.table_name}"'
        sets = ([f"{_column(model, n)} = v.{a}" for n, a in zip(names, aliases)]
                + [f"{_column(model, n)} = {table}.{_column(model, n)} + v.{a}"
                   for n, a in zip(increments, aliases[len(names):])])
        where = [f"{table}.{_column(model, k)} = v.{a}" for k, a in zip(keys, aliases[len(names) + len(increments):])]
        return (f"UPDATE {table} SET " + ", ".join(sets) + " FROM (VALUES " + ", ".join([first] + [rest] * (rows - 1))
                + ") AS v(" + ", ".join(aliases) + ") WHERE " + " AND ".join(where))
    return _cached(("pg-update-many", model, names, increments, keys, rows), build, rows)


# PostgreSQL takes at most 65,535 parameters a statement; batches stay well under.
_MAX_PARAMETERS = 20_000


def _batches(rows: list[tuple], width: int) -> Iterator[list[tuple]]:
    size = max(1, _MAX_PARAMETERS // max(1, width))
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


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
    wins, increments add up) and written as one batch per (table, field set); inserts and
    deletes keep their order (runs of the same statement become one batch) and are written
    before the merged updates: merge the rows of a table, or keep them in order, not both.
    Outside a transaction each write happens at once.

    A batch is one ``executemany`` of a prepared statement on SQLite (in-process: no round
    trip to save) and one multi-row statement on PostgreSQL (one round trip a batch)."""

    def __init__(self, store: Store):
        self.store = store
        self._updates: list[tuple[type[pw.Model], tuple, tuple, dict[str, Any], dict[str, Any] | None]] = []
        # (kind, model, names, upsert, params): kind "insert" or "delete"
        self._statements: list[tuple[str, type[pw.Model], tuple[str, ...], bool, tuple]] = []

    def update(self, model: type[pw.Model], fields: dict[str, Any], *, where: dict[str, Any],
               increments: dict[str, Any] | None = None) -> None:
        """``UPDATE model SET fields (, col = col + increment) WHERE where``, merged per row."""
        if self.store.db.transaction_depth() == 0:
            self.store.update_rows(model, fields, where=where, increments=increments)
            return
        self._updates.append((model, tuple(where), tuple(where.values()), fields, increments))

    def insert(self, model: type[pw.Model], fields: dict[str, Any], *, or_replace: bool = False) -> None:
        """Insert a row; ``or_replace``: a row with the same unique key takes its values."""
        if self.store.db.transaction_depth() == 0:
            self.store.insert_row(model, fields, or_replace=or_replace)
            return
        names = tuple(fields)
        _, defaulted = _insert_sql(model, names, or_replace, self.store.param)
        self._statements.append(("insert", model, names, or_replace, (*fields.values(), *_defaults(model, defaulted))))

    def delete(self, model: type[pw.Model], *, where: dict[str, Any]) -> None:
        if self.store.db.transaction_depth() == 0:
            self.store.delete_rows(model, where=where)
            return
        self._statements.append(("delete", model, tuple(where), False, tuple(where.values())))

    def flush_staged(self) -> None:
        if self._statements:
            statements, self._statements = self._statements, []
            for (kind, model, names, upsert), run in itertools.groupby(statements, key=operator.itemgetter(0, 1, 2, 3)):
                rows = [params for *_, params in run]  # in order
                if kind == "insert":
                    self.store.insert_many_rows(model, names, rows, upsert=upsert)
                else:
                    self.store.delete_many_rows(model, names, rows)
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

    The same code runs on SQLite and PostgreSQL: statements are built with the database's
    placeholder (:attr:`param`); the few places that differ test :attr:`is_sqlite`.
    """

    def __init__(self, db: pw.Database, url: str):
        self.db = db
        self.url = url
        self.is_sqlite = isinstance(db, pw.SqliteDatabase)
        self.param = db.param
        self._files = sqlite_files(db)
        if self._files:
            _OPENED_FILES.add(self._files)
        self.staged = StagedWrites(self)
        self._stagers: list[Stager] = [self.staged]
        self.reconnects = True  # see _reconnect_if_lost; off once a coordinator makes a run lock

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.is_sqlite else "postgresql"

    def add_stager(self, stager: Stager) -> None:
        self._stagers.append(stager)

    def remove_stager(self, stager: Stager) -> None:
        if stager in self._stagers:
            self._stagers.remove(stager)

    # -- transactions -----------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, run_id: str | None = None) -> Iterator[int]:
        """A write transaction; yields the new change version of ``run_id`` (0 without one).
        On PostgreSQL its commit notifies the listeners of ``run_id`` (:meth:`change_feed`)."""
        # Decided before entering: peewee 4 does not count savepoints in transaction_depth().
        outermost = self.db.transaction_depth() == 0
        if outermost:
            refuse_unwritable(self._files)
            self._reconnect_if_lost()
        ctx = self.db.atomic("IMMEDIATE") if self.is_sqlite else self.db.atomic()
        with ctx:
            version = 0
            if run_id is not None:
                if outermost:
                    # Every state change runs this: one pre-built statement, not peewee's
                    # UPDATE + SELECT compiled afresh each time (bench/: ~40% of a transition).
                    sql = _bump_version_sql(self.param, notify=not self.is_sqlite)
                    rows = self.db.execute_sql(sql, (time.time(), run_id)).fetchall()
                    version = rows[0][-1 if self.is_sqlite else 0] if rows else 0
                else:
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
        """A read snapshot (consistent view across several queries): on PostgreSQL a
        ``REPEATABLE READ READ ONLY`` transaction (READ COMMITTED, its default, would let
        each query see other commits); on SQLite a deferred transaction (its first read
        fixes the snapshot). Inside another transaction it is a savepoint of it."""
        if self.db.transaction_depth() == 0:
            refuse_unwritable(self._files)  # a SQLite reader writes its read mark in -shm too
            self._reconnect_if_lost()
        return snapshot(self.db)

    def _reconnect_if_lost(self) -> None:
        """PostgreSQL, outside a transaction: open a new session when the server ended ours.

        After a server restart, a failover or an idle-session kill, psycopg marks the
        connection closed but peewee keeps handing it out ("the connection is closed" for
        ever): an attached console would say "store unavailable" long after the server came
        back. The read or write that met the loss fails as it must; the next one gets a new
        session. Not for a coordinator's store (one that made a run lock): its advisory lock
        died with the server's sessions, so it must stop, not write on without it."""
        if self.is_sqlite or not self.reconnects:
            return
        if not self.db.is_closed() and self.db.connection().closed:
            self.db.close()
            self.db.connect()

    def close(self) -> None:
        if self.db.is_closed() or unwritable_file(self._files):
            return  # closing would fault: see stores_unsafe_to_close
        self.db.close()

    # -- hot-path row writes ------------------------------------------------------------
    def update_rows(self, model: type[pw.Model], fields: dict[str, Any], *, where: dict[str, Any],
                    increments: dict[str, Any] | None = None) -> None:
        """``UPDATE model SET fields (, col = col + increment) WHERE every where-field equals``.

        The runtime writes a few task/agent/attempt rows per task lifecycle: one cached
        statement per field set (peewee compiles each query afresh, ~0.1 ms each). Values
        must be plain column values (str, int, float, None)."""
        increments = increments or {}
        sql = _update_sql(model, tuple(fields), tuple(increments), tuple(where), self.param)
        self.db.execute_sql(sql, (*fields.values(), *increments.values(), *where.values()))

    def update_many(self, model: type[pw.Model], names: tuple[str, ...], keys: tuple[str, ...],
                    rows: list[tuple], *, increments: tuple[str, ...] = ()) -> None:
        """Update rows (values of ``names``, then of ``increments``, added to the column,
        then of ``keys``): one executemany on SQLite, multi-row UPDATEs on PostgreSQL."""
        if not rows:
            return
        if self.is_sqlite:
            self.db.cursor().executemany(_update_sql(model, names, increments, keys), rows)
            return
        width = len(names) + len(increments) + len(keys)
        for batch in _batches(rows, width):
            sql = _pg_update_many_sql(model, names, increments, keys, len(batch))
            self.db.execute_sql(sql, [value for row in batch for value in row])

    def delete_rows(self, model: type[pw.Model], *, where: dict[str, Any]) -> None:
        self.db.execute_sql(_delete_sql(model, tuple(where), self.param), tuple(where.values()))

    def delete_many_rows(self, model: type[pw.Model], keys: tuple[str, ...], rows: list[tuple]) -> None:
        """Delete the rows whose ``keys`` equal each of ``rows``: one executemany on SQLite,
        ``DELETE ... WHERE (keys) IN (VALUES ...)`` on PostgreSQL."""
        if not rows:
            return
        if self.is_sqlite:
            self.db.cursor().executemany(_delete_sql(model, keys), rows)
            return
        one = "(" + ", ".join("%s" for _ in keys) + ")"
        for batch in _batches(rows, len(keys)):
            sql = (f'DELETE FROM "{model._meta.table_name}" WHERE (' + ", ".join(_column(model, k) for k in keys)
                   + ") IN (VALUES " + ", ".join(one for _ in batch) + ")")
            self.db.execute_sql(sql, [value for row in batch for value in row])

    def insert_row(self, model: type[pw.Model], fields: dict[str, Any], *, or_replace: bool = False) -> int:
        """Insert one row (fields not given take their model default); returns its id.
        ``or_replace``: a row with the same unique key takes the new values (an upsert)."""
        returning = "" if self.is_sqlite else model._meta.primary_key.name
        sql, defaulted = _insert_sql(model, tuple(fields), or_replace, self.param, returning=returning)
        cursor = self.db.execute_sql(sql, (*fields.values(), *_defaults(model, defaulted)))
        return cursor.lastrowid if self.is_sqlite else cursor.fetchone()[0]

    def insert_many_rows(self, model: type[pw.Model], names: tuple[str, ...], rows: list[tuple], *,
                         upsert: bool = False) -> None:
        """Insert rows (values of ``names`` then of the defaulted fields, as staged):
        one executemany on SQLite, multi-row INSERTs on PostgreSQL."""
        if not rows:
            return
        if self.is_sqlite:
            sql, _ = _insert_sql(model, names, upsert)
            self.db.cursor().executemany(sql, rows)
            return
        # A multi-row upsert may not touch one key twice: the last row of each key wins.
        if upsert:
            key_positions = [names.index(k) for k in _unique_key(model)]
            rows = list({tuple(row[i] for i in key_positions): row for row in rows}.values())
        for batch in _batches(rows, len(rows[0])):
            sql, _ = _insert_sql(model, names, upsert, self.param, rows=len(batch))
            self.db.execute_sql(sql, [value for row in batch for value in row])

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
        # Several events per task lifecycle: a pre-built INSERT skips peewee's per-call SQL
        # compilation (the row object is built without a query).
        if self.is_sqlite:
            seq = self.db.execute_sql(_insert_event_sql(self.param), tuple(fields.values())).lastrowid
        else:
            sql = _insert_event_sql(self.param, returning=True)
            seq = self.db.execute_sql(sql, _pg_event_row(tuple(fields.values()))).fetchone()[0]
        return m.Event(seq=seq, **fields)

    def add_events(self, rows: list[tuple]) -> list[int]:
        """Insert events (tuples in ``_EVENT_COLUMNS`` order, ``data_json`` already encoded) as
        one statement batch; returns their ``seq`` numbers. Call inside a write transaction
        (on SQLite the numbers follow the table's last one)."""
        if not rows:
            return []
        if not self.is_sqlite:
            # Numbers taken from the sequence first, then one multi-row INSERT with them (the
            # order of a multi-row INSERT's RETURNING rows is not promised).
            seqs = sorted(seq for (seq,) in self.db.execute_sql(_NEXT_EVENT_SEQS_SQL, (len(rows),)).fetchall())
            rows = [_pg_event_row(row) for row in rows]
            for start in range(0, len(rows), 1000):
                batch = rows[start:start + 1000]
                sql = _insert_event_sql(self.param, with_seq=True, rows=len(batch))
                self.db.execute_sql(sql, [value for seq, row in zip(seqs[start:], batch) for value in (seq, *row)])
            return seqs
        last = self.db.execute_sql(_LAST_EVENT_SQL).fetchone()[0] or 0
        # SQLite numbers a row of a table without AUTOINCREMENT one past the largest ``seq``
        # in it: inside this transaction the rows get last+1, last+2, ... in order, the
        # numbers are not bound per row (no tuple rebuilt per event).
        cursor = self.db.cursor()
        cursor.executemany(_insert_event_sql(self.param), rows)
        end = last + len(rows)
        if cursor.execute("SELECT last_insert_rowid()").fetchone()[0] != end:  # the rule above broke: say so
            raise StoreError(f"event numbering: expected the last new event to be {end}")
        return list(range(last + 1, end + 1))

    def enqueue_control(self, run_id: str, command: str, source: str = "cli", **args: Any) -> int:
        """Queue an operator command for the coordinator; returns its id (on PostgreSQL
        the coordinator hears of it by NOTIFY)."""
        with self.write():
            row = m.Control.create(
                run=run_id, ts=time.time(), command=command, args_json=json.dumps(args), source=source
            )
            if not self.is_sqlite:
                self.db.execute_sql(f"SELECT pg_notify('{CHANGE_CHANNEL}', %s)", (run_id,))
        return row.id

    def pending_controls(self, run_id: str) -> list[m.Control]:
        # Polled every loop iteration: a cheap probe first, usually empty.
        probe = self.db.execute_sql(_pending_control_sql(self.param), (run_id,)).fetchone()
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

    # -- PostgreSQL: the run lock and change notifications -------------------------------
    def run_lock(self, run_id: str) -> "AdvisoryRunLock":
        """The run's lock on a PostgreSQL store (SQLite stores lock the run folder instead)."""
        if self.is_sqlite:
            raise StoreError("a SQLite store's run lock is the run folder's coordinator.lock")
        self.reconnects = False  # a coordinator's store: writes without the lock's session are not safe
        return AdvisoryRunLock(self.url, run_id)

    def change_feed(self, run_id: str, slow_poll_seconds: float = 5.0) -> "ChangeFeed":
        """Whether ``run_id`` may have changed since last asked: LISTEN/NOTIFY on PostgreSQL
        (with a slow poll as fallback), always yes on SQLite (which has no notifications:
        its readers poll)."""
        return ChangeFeed(None if self.is_sqlite else self.url, run_id, slow_poll_seconds)


def sqlite_files(db: pw.Database) -> tuple[str, ...]:
    """The files a file-backed SQLite store writes (the database, its WAL and its shared
    memory); none for PostgreSQL or an in-memory database."""
    return _database_files(db.database) if isinstance(db, pw.SqliteDatabase) else ()


def _database_files(database: str) -> tuple[str, ...]:
    if database in ("", ":memory:") or database.startswith("file:"):
        return ()
    return tuple(f"{database}{suffix}" for suffix in ("", "-wal", "-shm"))


_OPENED_FILES: set[tuple[str, ...]] = set()  # the files of every SQLite store this process opened


def stores_unsafe_to_close() -> bool:
    """Whether a SQLite store this process opened has a file that refuses writes now (made
    immutable mid-run). Closing its last connection would checkpoint through the mapped
    ``-shm`` and die of SIGBUS, whether :meth:`Store.close` or the interpreter's exit closes
    it; such a process ends with ``os._exit`` instead (``app.main``), which SQLite treats as
    a crash: the WAL keeps every commit and the next open recovers it."""
    return any(unwritable_file(files) for files in _OPENED_FILES)


def unwritable_file(paths: tuple[str, ...]) -> str | None:
    """The first of ``paths`` that exists and refuses writes (read-only or immutable)."""
    for path in paths:
        if not os.access(path, os.W_OK) and os.path.exists(path):
            return path
    return None


def refuse_unwritable(paths: tuple[str, ...]) -> None:
    """Raise PermissionError naming the first of ``paths`` that refuses writes.

    Why before every transaction: SQLite maps ``-shm`` into memory, and a write to a page of
    a file made immutable (``chattr +i``) mid-run is not an error but SIGBUS, which kills the
    process with no word. Checked first, the same change is a clean, resumable stop (the
    coordinator's "cannot write" pause); the three ``access`` calls cost about 3 µs. Checked
    by ``Store.write``/``Store.read`` and by every write outside a transaction (it runs in one
    of its own); a file frozen while a transaction is open is not caught."""
    path = unwritable_file(paths)
    if path is not None:
        raise PermissionError(errno.EPERM, "the store's file refuses writes (read-only or immutable)", path)


@contextlib.contextmanager
def snapshot(db: pw.Database) -> Iterator[None]:
    """A read-only snapshot transaction on ``db`` (see :meth:`Store.read`)."""
    if isinstance(db, pw.PostgresqlDatabase) and db.transaction_depth() == 0:
        with db.atomic("REPEATABLE READ READ ONLY"):
            yield
        return
    with db.atomic():
        yield


def _session(url: str):
    """A PostgreSQL session of its own (autocommit), outside peewee's per-thread connections."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"{redact_url(url)}: cannot connect: {' '.join(str(exc).split())}") from None


# The advisory-lock key space of hybrid-tui's run locks (the first of the two int keys).
_RUN_LOCK_CLASS = 0x4879  # "Hy"


class AdvisoryRunLock:
    """At most one coordinator drives a run on a PostgreSQL store: a session-level advisory
    lock on ``(hybrid-tui, hashtext(run id))`` held by a session the coordinator opens for
    it. The server drops it when that session ends (the process exits or dies, even on
    SIGKILL, or the connection is lost), so a crashed coordinator leaves no stale lock."""

    def __init__(self, url: str, run_id: str):
        self.url = url
        self.run_id = run_id
        self._session = None

    def try_acquire(self) -> bool:
        """True when this process now holds the run (or held it already)."""
        if self._session is not None:
            return True
        session = _session(self.url)
        (got,) = session.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                 (_RUN_LOCK_CLASS, self.run_id)).fetchone()
        if not got:
            session.close()
            return False
        self._session = session
        return True

    def holder_pid(self) -> int | None:
        """The server process id of the session holding the run's lock (None: free)."""
        with _session(self.url) as session:
            row = session.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND objid = hashtext(%s)::oid AND granted LIMIT 1", (_RUN_LOCK_CLASS, self.run_id)).fetchone()
        return row[0] if row else None

    def release(self) -> None:
        if self._session is None:
            return
        try:
            self._session.close()  # ending the session drops its advisory locks
        finally:
            self._session = None

    @property
    def held(self) -> bool:
        return self._session is not None


class ChangeFeed:
    """``changed()``: has the run (or its control queue) changed since the previous call?

    On PostgreSQL a session of its own LISTENs on :data:`CHANGE_CHANNEL`; every write
    transaction of a run and every queued control NOTIFYs its run id. ``changed()`` drains
    the notifications without blocking, and also says yes once ``slow_poll_seconds`` passed
    without one (the fallback when the listening session was lost: it reconnects). Without
    a URL (SQLite) it always says yes: the reader polls as before."""

    def __init__(self, url: str | None, run_id: str, slow_poll_seconds: float = 5.0):
        self.url = url
        self.run_id = run_id
        self.slow_poll_seconds = slow_poll_seconds
        self._session = None
        self._last_yes = 0.0

    @property
    def listening(self) -> bool:
        return self._session is not None

    def _listen(self) -> None:
        if self._session is not None or self.url is None:
            return
        try:
            session = _session(self.url)
            session.execute(f"LISTEN {CHANGE_CHANNEL}")
        except Exception:
            return  # the slow poll covers it; retried at the next call
        self._session = session

    def changed(self) -> bool:
        if self.url is None:
            return True
        now = time.monotonic()
        self._listen()
        heard = False
        if self._session is not None:
            try:
                # timeout=0: only what already arrived (psycopg reads the socket once).
                for note in self._session.notifies(timeout=0, stop_after=None):
                    heard = heard or note.payload == self.run_id
            except Exception:
                self.close()  # lost: poll until it reconnects
                heard = True
        if heard or now - self._last_yes >= self.slow_poll_seconds:
            self._last_yes = now
            return True
        return False

    def close(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            finally:
                self._session = None


def store_backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a store URL; StoreError for anything else."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise StoreError(f"{redact_url(url)}: not a store URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB)")


def redact_url(url: str) -> str:
    """A store URL without its password (for messages and the run folder's store.url)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


# PostgreSQL: parse text as JSON, NULL when it does not parse (SQLite's json_valid() is
# what the SQLite store uses). Used by store.cost_queries.
_PG_JSON_OR_NULL = """
CREATE OR REPLACE FUNCTION hybrid_json_or_null(doc text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN doc::jsonb;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$
"""
# The advisory-lock key two processes creating the same new PostgreSQL store serialise on.
_SCHEMA_LOCK_KEY = 0x48796272  # "Hybr"


def _check_schema(db: pw.Database, *, create: bool) -> None:
    """Create the tables of a new store, or check the schema version of an existing one."""
    is_sqlite = isinstance(db, pw.SqliteDatabase)
    # IMMEDIATE: two processes opening the same new store must not both create it.
    with db.atomic("IMMEDIATE") if is_sqlite else db.atomic():
        if not is_sqlite:  # the same on PostgreSQL: one creator at a time
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        if not m.SchemaVersion.table_exists():
            if db.get_tables():
                raise StoreError("it is not a hybrid-tui store (no schema_version table)")
            if not create:
                raise StoreError("it is empty, not a hybrid-tui store")
            db.create_tables(m.ALL_MODELS, safe=True)
            if not is_sqlite:
                db.execute_sql(_PG_JSON_OR_NULL)
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
        _upgrade(db, found)  # inside the lock: two processes opening an old store upgrade it once


def _upgrade(db: pw.Database, found: int) -> None:
    """Bring a store made by an older hybrid-tui up to this one's schema, so its runs can be
    resumed and read: every schema change so far only added tables and columns with
    defaults, so the upgrade creates the tables it lacks and adds the columns it lacks,
    then records the version; one transaction, so a failure leaves the store as it was.
    (A store of this version made before a column was added gets it the same way.)"""
    tables = set(db.get_tables())
    missing_tables = [model for model in m.ALL_MODELS if model._meta.table_name not in tables]
    missing_columns = [
        (model, field) for model in m.ALL_MODELS if model not in missing_tables
        for columns in [{column.name for column in db.get_columns(model._meta.table_name)}]
        for field in model._meta.sorted_fields if field.column_name not in columns
    ]
    if found == m.SCHEMA_VERSION and not (missing_tables or missing_columns):
        return
    try:
        with db.atomic():  # a savepoint of the caller's transaction
            for model, field in missing_columns:
                db.execute_sql(_add_column_sql(db, model, field))
            db.create_tables(missing_tables)
            if found < m.SCHEMA_VERSION:
                m.SchemaVersion.create(version=m.SCHEMA_VERSION, created_at=time.time())
    except (pw.DatabaseError, ValueError) as exc:
        raise StoreError(f"cannot upgrade it from schema version {found} to {m.SCHEMA_VERSION}: "
                         f"{' '.join(str(exc).split())}") from None


def _add_column_sql(db: pw.Database, model: type[pw.Model], field: pw.Field) -> str:
    # ALTER TABLE ... NOT NULL DEFAULT, which SQLite and PostgreSQL both take in place
    # (playhouse.migrate adds a NOT NULL column by rebuilding the whole table on SQLite).
    default = field.default
    if field.null:
        constraint = ""
    elif isinstance(default, bool):
        constraint = f" NOT NULL DEFAULT {int(default) if isinstance(db, pw.SqliteDatabase) else str(default).upper()}"
    elif isinstance(default, (int, float)):
        constraint = f" NOT NULL DEFAULT {default!r}"
    elif isinstance(default, str):
        constraint = " NOT NULL DEFAULT '" + default.replace("'", "''") + "'"
    else:
        raise ValueError(f"{model._meta.table_name}.{field.column_name} has no default to fill older rows with")
    column_type = db.field_types.get(field.field_type, field.field_type)
    if getattr(field, "max_length", None):
        column_type = f"{column_type}({field.max_length})"
    return f'ALTER TABLE "{model._meta.table_name}" ADD COLUMN "{field.column_name}" {column_type}{constraint}'


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
    shown = redact_url(text)
    if "://" not in text:
        path = Path(text)
        if not create and not path.exists():
            raise StoreError(f"{path}: no such store")
        if not create and path.is_file() and not _being_created(path):
            # Checked before connecting: switching an empty file to WAL would write a header.
            raise StoreError(f"{path}: cannot open the store: it is empty, not a hybrid-tui store")
        text = sqlite_url(path)
    if store_backend_of(text) == "sqlite":
        db = connect(text, pragmas=SQLITE_PRAGMAS, factory=_RedactingConnection)
    else:
        # peewee hands the URL's parts to psycopg (v3); a password may also come from
        # PGPASSWORD or ~/.pgpass, as for psql.
        db = connect(text, cursor_factory=_redacting_pg_cursor())
    m.database_proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _check_schema(db, create=create)
    except StoreError as exc:
        db.close()
        raise StoreError(f"{shown}: cannot open the store: {exc}") from None
    except pw.OperationalError as exc:  # e.g. a missing folder, a locked file, a server down
        db.close()
        raise StoreError(f"{shown}: cannot open the store: {' '.join(str(exc).split())}") from None
    except pw.DatabaseError as exc:
        db.close()
        raise StoreError(f"{shown}: cannot open the store: corrupt or not a database ({exc})") from None
    return Store(db, text)
