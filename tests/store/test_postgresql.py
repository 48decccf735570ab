"""The store on a real PostgreSQL server (a temporary one, tests/pg_server.py): snapshot
reads, the advisory run lock across processes, LISTEN/NOTIFY, upserts and multi-row
batches, the cost queries' JSON on both backends, and the command line's ``--store URL``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from hybrid_tui.app.main import main
from hybrid_tui.runtime.runlock import RunLock, RunLocked
from hybrid_tui.store import StoreError, cost_queries, models as m, open_store
from hybrid_tui.store.db import redact_url
from hybrid_tui.store.runs import list_store_runs

RUN = "r1"


@pytest.fixture
def pg_url(postgres_server, request) -> str:
    url = postgres_server.new_database("pgtest")
    request.addfinalizer(lambda: postgres_server.drop_database(url))
    return url


def add_run(store, run_id: str = RUN) -> None:
    with store.write():
        m.Run.create(id=run_id, mission_name="demo", mission_path="/m", run_dir=f"/runs/{run_id}", repo_path="/r",
                     source_repo="/r", base_branch="main", mission_branch="m", config_json="{}",
                     mission_budget_usd=10, retry_budget_usd=2, pool_min=1, pool_max=2, pool_target=1,
                     created_at=1.0, updated_at=1.0)


def add_task(task_id: str, spec_json: str = "{}", **fields) -> None:
    m.Task.create(run=RUN, task_id=task_id, issue_id="i1", title=task_id, priority="MEDIUM", spec_json=spec_json,
                  created_at=0, updated_at=0, **fields)


def test_a_snapshot_read_does_not_see_a_commit_made_during_it(pg_url: str) -> None:
    store = open_store(pg_url)
    add_run(store)
    try:
        with store.read():
            isolation, read_only = (store.db.execute_sql(f"SHOW {name}").fetchone()[0]
                                    for name in ("transaction_isolation", "transaction_read_only"))
            before = m.Run.get_by_id(RUN).version
            with psycopg.connect(pg_url, autocommit=True) as other:
                other.execute("UPDATE run SET version = version + 5 WHERE id = %s", (RUN,))
            inside = m.Run.get_by_id(RUN).version
            with pytest.raises(Exception, match="read-only transaction"):
                with store.db.atomic():  # a savepoint of the snapshot: still read-only
                    m.Run.update(status="x").execute()
        assert (isolation, read_only) == ("repeatable read", "on")
        assert inside == before
        assert m.Run.get_by_id(RUN).version == before + 5
    finally:
        store.close()


def test_upserts_and_multi_row_batches_write_what_sqlite_writes(pg_url: str) -> None:
    store = open_store(pg_url)
    add_run(store)
    try:
        with store.write(RUN) as version:
            add_task("a")
            add_task("b")
            for path, task in (("x.py", "a"), ("y.py", "a"), ("x.py", "b")):  # x.py's lock passes to b
                store.staged.insert(m.FileLock, {"run": RUN, "path": path, "task_id": task, "acquired_at": 1.0,
                                                 "expires_at": 2.0}, or_replace=True)
            store.staged.update(m.Task, {"status": "running", "agent_id": None, "version": version},
                                where={"run": RUN, "task_id": "a"}, increments={"cost_usd": 0.25})
            store.staged.update(m.Task, {"status": "running", "agent_id": "agent-02", "version": version},
                                where={"run": RUN, "task_id": "b"}, increments={"cost_usd": 0.5})
            store.staged.delete(m.FileLock, where={"run": RUN, "path": "y.py", "task_id": "a"})
        locks = sorted(m.FileLock.select(m.FileLock.path, m.FileLock.task_id).tuples())
        tasks = sorted(m.Task.select(m.Task.task_id, m.Task.status, m.Task.agent_id, m.Task.cost_usd).tuples())
        assert locks == [("x.py", "b")]
        assert tasks == [("a", "running", None, 0.25), ("b", "running", "agent-02", 0.5)]
        from hybrid_tui.store import writes

        writes.record_integration_commit(RUN, "a", "sha1", ["x.py"], 5.0)
        writes.record_integration_commit(RUN, "a", "sha2", ["y.py"], 6.0)  # replaces the task's row
        assert list(m.IntegrationCommit.select(m.IntegrationCommit.task_id, m.IntegrationCommit.sha).tuples()) == [
            ("a", "sha2")]
    finally:
        store.close()


def test_event_numbers_follow_the_order_of_a_batch(pg_url: str) -> None:
    store = open_store(pg_url)
    add_run(store)
    try:
        with store.write(RUN):
            first = store.add_event(RUN, "one").seq
            seqs = store.add_events([(RUN, float(i), "batch", "info", 7, True, None, f"e{i}", "{}") for i in range(5)])
        rows = list(m.Event.select(m.Event.seq, m.Event.message, m.Event.task_id, m.Event.attempt)
                    .order_by(m.Event.seq).tuples())
        assert seqs == sorted(seqs) and seqs[0] > first
        assert rows[1:] == [(seq, f"e{i}", "7", 1) for i, seq in enumerate(seqs)]  # as SQLite's affinity stores them
    finally:
        store.close()


SPECS = {
    "list": json.dumps({"validation": {"security_checks": ["bandit"]}}),
    "empty": json.dumps({"validation": {"security_checks": []}}),
    "text": json.dumps({"validation": {"security_checks": "yes"}}),
    "true": json.dumps({"validation": {"security_checks": True}}),
    "zero": json.dumps({"validation": {"security_checks": 0}}),
    "none": json.dumps({"validation": {}}),
    "broken": "{not json",
}


def test_the_cost_queries_read_security_checks_alike_on_both_backends(any_store_url: str) -> None:
    store = open_store(any_store_url)
    add_run(store)
    try:
        with store.write():
            for task_id, spec in SPECS.items():
                add_task(task_id, spec)
        shapes = {row.task_id: row.security for row in cost_queries.unsettled_task_estimates(RUN, SPECS, 60)}
        assert shapes == {"list": 1, "empty": 0, "text": 1, "true": 1, "zero": 0, "none": 0, "broken": 0}
    finally:
        store.close()


def test_a_store_whose_session_the_server_ended_reads_and_writes_again(pg_url: str) -> None:
    """A server restart or an idle-session kill ends the store's session: the read that meets
    the loss fails, the next read and write open a new session (an attached console recovers
    from "store unavailable" once the server is back)."""
    store = open_store(pg_url)
    add_run(store)
    try:
        with store.read():
            (lost_pid,) = store.db.execute_sql("SELECT pg_backend_pid()").fetchone()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (lost_pid,))
        with pytest.raises(Exception, match="terminating connection"):
            with store.read():
                m.Run.get_by_id(RUN)
        with store.read():
            assert m.Run.get_by_id(RUN).id == RUN
            (new_pid,) = store.db.execute_sql("SELECT pg_backend_pid()").fetchone()
        assert new_pid != lost_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (new_pid,))
        with pytest.raises(Exception, match="terminating connection"):
            store.enqueue_control(RUN, "pause")
        assert store.enqueue_control(RUN, "pause") > 0
        assert [c.command for c in store.pending_controls(RUN)] == ["pause"]
    finally:
        store.close()


def test_a_coordinators_store_does_not_write_on_after_losing_its_session(pg_url: str) -> None:
    """A coordinator's session loss may be the server's restart, which also ended its run
    lock's session: its store must keep failing (the coordinator stops, `resume` recovers),
    never write on while another coordinator may have taken the run."""
    store = open_store(pg_url)
    add_run(store)
    lock = store.run_lock(RUN)
    try:
        assert lock.try_acquire()
        with store.read():
            (pid,) = store.db.execute_sql("SELECT pg_backend_pid()").fetchone()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(2):
            with pytest.raises(Exception, match="terminating connection|connection is closed"):
                with store.write(RUN):
                    pass
    finally:
        lock.release()
        store.close()


LOCK_HOLDER = r"""
import sys, time
from hybrid_tui.runtime.runlock import RunLock
from hybrid_tui.store import open_store
store = open_store(sys.argv[1])
lock = RunLock("/nonexistent/r1", store, "r1")
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_run_lock_is_an_advisory_lock_that_dies_with_its_holder(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    add_run(store)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, pg_url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RunLock(tmp_path, store, RUN)
        with pytest.raises(RunLocked, match="already driven by another coordinator"):
            lock.acquire()
        assert not (tmp_path / "coordinator.lock").exists()  # not the run folder's file lock
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the server notices the dead session at once or nearly
            try:
                lock.acquire()
                break
            except RunLocked:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert lock.held
        lock.release()
    finally:
        holder.kill()
        holder.wait()
        store.close()


def test_the_change_feed_hears_commits_and_controls_of_its_run_only(pg_url: str) -> None:
    store = open_store(pg_url)
    add_run(store)
    add_run(store, "r2")
    feed = store.change_feed(RUN, slow_poll_seconds=3600)
    try:
        assert feed.changed()  # the first call always says yes
        assert not feed.changed()
        with store.write("r2"):
            pass
        time.sleep(0.2)
        assert not feed.changed()  # another run's commit
        with store.write(RUN):
            pass
        deadline = time.monotonic() + 10
        while not feed.changed():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        store.enqueue_control(RUN, "pause")
        deadline = time.monotonic() + 10
        while not feed.changed():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        feed.close()
        store.close()


def test_a_sqlite_store_has_no_feed_to_wait_for(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    try:
        feed = store.change_feed(RUN)
        assert feed.changed() and feed.changed()  # readers poll as before
        with pytest.raises(StoreError):
            store.run_lock(RUN)
    finally:
        store.close()


def test_a_bad_store_url_is_one_line_and_exit_2(capsys, tmp_path: Path) -> None:
    assert main(["runs", "--store", "mysql://x@localhost/db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--store mysql://x@localhost/db: not a URL" in err
    assert main(["report", "r1", "--store", "postgresql://u:s3cret@127.0.0.1:1/none", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the store" in err and "s3cret" not in err
    assert main(["pause", "r1", "--store", "not-a-url"]) == 2
    assert "--store not-a-url: not a URL" in capsys.readouterr().err


def test_redact_url_keeps_everything_but_the_password() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db?sslmode=require") == "postgresql://u@h:5432/db?sslmode=require"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_runs_report_and_controls_with_store_url(quickstart_copy_for_pg: Path, pg_url: str, tmp_path: Path,
                                                 capsys) -> None:
    runs = tmp_path / "runs"
    code = main(["run", str(quickstart_copy_for_pg), "--headless", "--json", "--agents", "2", "--runs-dir", str(runs),
                 "--store", pg_url])
    assert code == 0
    capsys.readouterr()
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert (run_dir / "store.url").read_text().strip() == pg_url and not (run_dir / "state.db").exists()

    assert main(["runs", "--store", pg_url, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    summary = json.loads(line)
    assert (summary["run_id"], summary["status"], summary["tasks_done"], summary["tasks_total"]) == (
        run_dir.name, "finished", 8, 8)
    assert [s.run_id for s in list_store_runs(pg_url)] == [run_dir.name]

    # The runs folder lists it too (through its store.url).
    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks_done"] == 8

    # From a second process, with only the URL and the run id (another machine would do this).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    report = subprocess.run([sys.executable, "-m", "hybrid_tui", "report", run_dir.name, "--store", pg_url, "--json"],
                            cwd=elsewhere, capture_output=True, text=True, env=env, timeout=120)
    assert report.returncode == 0, report.stderr
    assert run_dir.name in json.dumps(json.loads(report.stdout))
    control = subprocess.run([sys.executable, "-m", "hybrid_tui", "pause", run_dir.name, "--store", pg_url],
                             cwd=elsewhere, capture_output=True, text=True, env=env, timeout=120)
    assert control.returncode == 0, control.stderr
    store = open_store(pg_url, create=False)
    try:
        assert [c.command for c in store.pending_controls(run_dir.name)] == ["pause"]
    finally:
        store.close()
    missing = subprocess.run([sys.executable, "-m", "hybrid_tui", "pause", "no-such-run", "--store", pg_url],
                             cwd=elsewhere, capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


@pytest.fixture
def quickstart_copy_for_pg(tmp_path: Path) -> Path:
    from tests.runtime.helpers import copy_quickstart

    return copy_quickstart(tmp_path / "quickstart")


def test_a_store_made_by_an_older_hybrid_tui_is_upgraded_at_open(pg_url: str) -> None:
    store = open_store(pg_url)
    add_run(store)
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as raw:  # as schema version 1 had it
        for table, column in (("run", "wait_kind"), ("run", "wait_reason"), ("agent", "worker"),
                              ("attempt", "worker"), ("attempt", "session_id")):
            raw.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        raw.execute('DROP TABLE "forecast"')
        raw.execute("DELETE FROM schema_version")
        raw.execute("INSERT INTO schema_version (version, created_at) VALUES (1, 0)")
    store = open_store(pg_url, create=False)
    try:
        run = store.get_run(RUN)
        assert (run.status, run.wait_kind, run.wait_reason) == ("created", "", "")
        assert m.Forecast.select().count() == 0
    finally:
        store.close()
    with psycopg.connect(pg_url) as raw:
        assert raw.execute("SELECT max(version) FROM schema_version").fetchone()[0] == m.SCHEMA_VERSION
