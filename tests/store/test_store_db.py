"""open_store on real SQLite files: settings, refusals with a clear message, and writers in
two processes that never see "database is locked"."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import peewee as pw
import pytest

from hybrid_tui.store import StoreError, models as m, open_store

RUN = "r1"


def add_run(store, run_id: str = RUN) -> None:
    with store.write():
        m.Run.create(
            id=run_id, mission_name="tiny", mission_path="", run_dir="", repo_path="", source_repo="",
            base_branch="main", mission_branch="hybrid/tiny", config_json="{}", mission_budget_usd=5,
            retry_budget_usd=1, pool_min=1, pool_max=2, pool_target=1, created_at=0, updated_at=0,
        )


@pytest.fixture
def db_path(tmp_path: Path):
    path = tmp_path / "state.db"
    yield path
    if m.database_proxy.obj is not None and not m.database_proxy.obj.is_closed():
        m.database_proxy.obj.close()


def test_sqlite_store_uses_wal_normal_sync_busy_timeout_and_foreign_keys(db_path: Path) -> None:
    store = open_store(db_path)
    assert store.db.pragma("journal_mode") == "wal"
    assert store.db.pragma("synchronous") == 1  # NORMAL
    assert store.db.pragma("busy_timeout") == 30_000
    assert store.db.pragma("foreign_keys") == 1
    assert m.SchemaVersion.select(m.SchemaVersion.version).scalar() == m.SCHEMA_VERSION
    store.close()


def test_sqlite_page_cache_is_64_mb_so_a_large_runs_task_pages_stay_cached(db_path: Path) -> None:
    # 16 MB let a 50,000-task run re-read task-table pages from the OS at nearly every update.
    store = open_store(db_path)
    assert store.db.pragma("cache_size") == -64_000  # negative: KiB
    store.close()

def test_write_bumps_the_run_version_once_per_transaction(db_path: Path) -> None:
    store = open_store(db_path)
    add_run(store)
    with store.write(RUN) as v1:
        with store.write(RUN) as nested:  # a nested write is a savepoint, not a new version
            assert nested == v1
    with store.write(RUN) as v2:
        pass
    assert (v1, v2) == (1, 2)
    store.close()


def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError) as exc:
        open_store(db_path)
    assert str(exc.value) == f"{db_path}: cannot open the store: corrupt or not a database (file is not a database)"


def test_a_store_with_a_damaged_page_is_refused_at_open(db_path: Path) -> None:
    store = open_store(db_path)
    add_run(store)
    with store.write():
        for n in range(2000):
            store.add_event(RUN, "tick", "x" * 200, n=n)
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    with open(db_path, "r+b") as f:
        f.seek(4096 * 20)
        f.write(b"\xa5" * 4096 * 4)
    with pytest.raises(StoreError) as exc:
        open_store(db_path)
    # Caught by the schema read or by the quick_check at open, depending on the damaged page.
    message = str(exc.value)
    assert message.startswith(f"{db_path}: cannot open the store: ") and "corrupt" in message
    assert "\n" not in message  # one line, as the CLI prints it


def test_a_store_from_a_newer_hybrid_tui_is_refused(db_path: Path) -> None:
    store = open_store(db_path)
    with store.write():
        m.SchemaVersion.create(version=m.SCHEMA_VERSION + 1, created_at=time.time())
    store.close()
    with pytest.raises(StoreError) as exc:
        open_store(db_path)
    assert str(exc.value) == (
        f"{db_path}: cannot open the store: its schema version {m.SCHEMA_VERSION + 1} is newer than this "
        f"hybrid-tui supports ({m.SCHEMA_VERSION}); upgrade hybrid-tui"
    )


def test_some_other_sqlite_database_is_refused_and_left_alone(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="it is not a hybrid-tui store"):
        open_store(db_path)
    conn = sqlite3.connect(db_path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["notes"]
    conn.close()


def test_open_without_create_refuses_a_missing_store(db_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        open_store(db_path, create=False)
    assert not db_path.exists()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hybrid_tui.store import open_store
    store = open_store(sys.argv[1])
    stop = Path(sys.argv[2])
    n = 0
    while not stop.exists():
        with store.write():
            store.add_event("r1", "writer", n=n)
        n += 1
    print(n)
    """
)


def start_writer(db_path: Path, stop: Path) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return writer


def writer_events(db_path: Path) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM event WHERE kind = 'writer'").fetchone()[0]
    finally:
        conn.close()


def wait_for_writer(db_path: Path, writer: subprocess.Popen, more_than: int) -> None:
    while writer_events(db_path) <= more_than:
        assert writer.poll() is None, writer.stderr.read()
        time.sleep(0.01)


def stop_writer(writer: subprocess.Popen, stop: Path) -> int:
    stop.touch()
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    return int(out)


def test_read_then_write_beside_a_busy_writer_never_hits_database_is_locked(db_path: Path, tmp_path: Path) -> None:
    store = open_store(db_path)
    add_run(store)
    stop = tmp_path / "stop"
    writer = start_writer(db_path, stop)
    try:
        wait_for_writer(db_path, writer, 0)
        before = writer_events(db_path)
        for i in range(40):
            with store.write(RUN):
                seen = m.Event.select().where(m.Event.kind == "writer").count()
                time.sleep(0.002)  # hold the read a moment: the writer would commit under a deferred one
                store.add_event(RUN, "reader", seen=seen, i=i)
        written = stop_writer(writer, stop)
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert m.Event.select().where(m.Event.kind == "reader").count() == 40
    assert written > before  # the writer really wrote while we did
    store.close()


def test_the_same_race_with_a_deferred_transaction_does_hit_database_is_locked(db_path: Path, tmp_path: Path) -> None:
    """Why Store.write uses BEGIN IMMEDIATE: shows the load above is a real race."""
    store = open_store(db_path)
    add_run(store)
    stop = tmp_path / "stop"
    writer = start_writer(db_path, stop)
    try:
        wait_for_writer(db_path, writer, 0)
        with pytest.raises(pw.OperationalError, match="database is locked"):
            with store.db.atomic():  # deferred: starts as a reader
                seen = m.Event.select().count()
                wait_for_writer(db_path, writer, writer_events(db_path))  # a commit lands after our read
                store.add_event(RUN, "reader", seen=seen)
        stop_writer(writer, stop)
    finally:
        stop.touch()
        writer.wait(timeout=60)
    store.close()
