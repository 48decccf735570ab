"""A store made by an older hybrid-tui opens: the tables and columns added since are added
at open (one transaction) and the version recorded, so a run started before the upgrade can
be resumed and read. The older stores are made by taking today's schema apart the way the
versions differ (every schema change so far only added tables and columns)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hybrid_tui.store import StoreError, models as m, open_store, queries

# What each older schema lacked, as (table, column); a column of None is a whole table.
VERSION_1 = [("run", "wait_kind"), ("run", "wait_reason"), ("forecast", None), ("agent", "worker"),
             ("attempt", "worker"), ("attempt", "session_id")]
VERSION_2 = [("agent", "worker"), ("attempt", "worker")]


def _store_with_a_run(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        with store.write():
            m.Run.create(id="r1", mission_name="old", mission_path="/m", run_dir="/d", repo_path="/r",
                         source_repo="/r", base_branch="main", mission_branch="mission/old", status="paused",
                         config_json="{}", mission_budget_usd=1.0, retry_budget_usd=0.5, pool_min=1, pool_max=2,
                         pool_target=1, created_at=1.0, updated_at=1.0)
    finally:
        store.close()


def _as_made_by(db_path: Path, version: int, lacking: list[tuple[str, str | None]]) -> None:
    with sqlite3.connect(db_path) as raw:
        for table, column in lacking:
            raw.execute(f'DROP TABLE "{table}"' if column is None else f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        raw.execute("DELETE FROM schema_version")
        raw.execute("INSERT INTO schema_version (version, created_at) VALUES (?, 0)", (version,))
    sqlite3.connect(db_path).close()


@pytest.mark.parametrize("version,lacking", [(1, VERSION_1), (2, VERSION_2), (m.SCHEMA_VERSION, [("attempt", "session_id")])])
def test_an_older_store_is_upgraded_at_open_and_keeps_its_runs(tmp_path: Path, version, lacking):
    db_path = tmp_path / "state.db"
    _store_with_a_run(db_path)
    _as_made_by(db_path, version, lacking)
    store = open_store(db_path, create=False)
    try:
        for table, column in lacking:
            columns = {c.name for c in store.db.get_columns(table)}
            assert column is None or column in columns
        run = store.get_run("r1")
        assert (run.status, run.wait_reason) == ("paused", "")
        assert queries.start_forecast("r1") is None  # the new table is there, and empty
    finally:
        store.close()
    open_store(db_path, create=False).close()  # and the next open finds nothing to do
    with sqlite3.connect(db_path) as raw:
        assert max(v for (v,) in raw.execute("SELECT version FROM schema_version")) == m.SCHEMA_VERSION


def test_an_upgrade_that_fails_leaves_the_store_as_it_was(tmp_path: Path):
    db_path = tmp_path / "state.db"
    _store_with_a_run(db_path)
    _as_made_by(db_path, 1, VERSION_1)
    with sqlite3.connect(db_path) as raw:  # a table in the way of the one the upgrade creates
        raw.execute("CREATE VIEW forecast AS SELECT 1 AS x")
    before = _schema(db_path)
    with pytest.raises(StoreError, match=r"cannot upgrade it from schema version 1 to \d+"):
        open_store(db_path, create=False)
    assert _schema(db_path) == before


def _schema(db_path: Path) -> list[tuple]:
    with sqlite3.connect(db_path) as raw:
        return raw.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() + \
            raw.execute("SELECT version FROM schema_version").fetchall()

