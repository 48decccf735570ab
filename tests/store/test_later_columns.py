"""A store made before a column was added to schema version 1 (attempt.session_id) opens:
the column is added at open, so a run started before the upgrade can be resumed and read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hybrid_tui.store import models as m, open_store


def test_a_store_without_attempt_session_id_gets_the_column_at_open(tmp_path: Path):
    db_path = tmp_path / "state.db"
    open_store(db_path).close()
    with sqlite3.connect(db_path) as raw:  # as a store written before the column existed
        raw.execute("ALTER TABLE attempt DROP COLUMN session_id")
    store = open_store(db_path, create=False)
    try:
        columns = {c.name for c in store.db.get_columns("attempt")}
        assert "session_id" in columns
        assert m.Attempt.select().count() == 0
    finally:
        store.close()
    store = open_store(db_path, create=False)  # and the next open finds it there
    store.close()
