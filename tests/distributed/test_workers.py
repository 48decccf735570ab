"""Attempts on worker processes through Celery and a real Redis: the quickstart through three
workers, a worker SIGKILLed mid-attempt (both with the store on SQLite and on PostgreSQL), a
late duplicate result, Redis restarted mid-run, the coordinator killed and resumed, and the
API key nowhere in Redis's or PostgreSQL's data."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from distributed.helpers import (
    SECRET, Monitor, coordinator_log, finish, query, start_coordinator, wait_until,
)
from reliability.helpers import end_state
from runtime.helpers import branch_commits, git, hybrid, only_run_dir

from hybrid_tui.workspace.patches import checkout_base, make_patch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NAMES = ["w1", "w2", "w3"]


def _run_args(mission: Path, runs: Path, broker: str, *extra: str) -> list[str]:
    return ["run", str(mission), "--headless", "--runs-dir", str(runs), "--broker", broker, "--lease-seconds", "2",
            *extra]


def _one_machine_tree(mission: Path, tmp_path: Path) -> str:
    """The mission branch's tree after a run of the same mission in one process."""
    runs = tmp_path / "runs-local"
    hybrid("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    return end_state(only_run_dir(runs))["tree"]


def _attempts(runs: Path) -> list[tuple]:
    return query(runs, "SELECT task_id, number, worker, outcome, failure_type FROM attempt "
                       "WHERE phase != 'planning' ORDER BY task_id, number")


def test_quickstart_through_three_workers_matches_one_machine(redis_server, workers, quickstart_copy, run_store,
                                                              tmp_path):
    expected_tree = _one_machine_tree(quickstart_copy, tmp_path)
    # The first run committed onto its own mission branch; this run starts from main again.
    workers.start_many(NAMES)
    monitor = Monitor(redis_server)
    runs = tmp_path / "runs"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--json", *run_store.args),
                             cwd=tmp_path / "coord")
    assert finish(proc, tmp_path / "coord") == 0, coordinator_log(tmp_path / "coord")[-4000:]

    state = end_state(only_run_dir(runs))
    assert set(state["status"].values()) == {"done"}
    assert state["tree"] == expected_tree  # the same final tree as one machine
    commits = branch_commits(state["repo"], state["branch"])
    assert sorted(c["task"] for c in commits) == sorted(state["status"])  # one commit per task
    attempts = _attempts(runs)
    assert all(worker in NAMES for _, _, worker, _, _ in attempts), attempts
    assert len({worker for _, _, worker, _, _ in attempts}) > 1, attempts  # more than one worker ran attempts
    started = query(runs, "SELECT data_json FROM event WHERE kind = 'attempt.started'")
    assert started and all(json.loads(d)["worker"] in NAMES for (d,) in started)

    # Secrets never travel: not in any command Redis received, nor in what it holds.
    assert "hybrid_tui.run_attempt" in monitor.text()  # the monitor did see the attempt messages
    assert SECRET not in monitor.text()
    assert SECRET.encode() not in redis_server.all_data()
    if run_store.backend == "postgresql":  # nor in what PostgreSQL holds: the dump, nor any file of the server
        run_id = only_run_dir(runs).name
        dump = run_store.server.dump_database(run_store.url)
        assert run_id.encode() in dump and b"attempt.started" in dump  # the dump does hold the run
        assert SECRET.encode() not in dump
        assert run_store.server.files_holding(run_id.encode())  # the files do hold the run's rows
        assert run_store.server.files_holding(SECRET.encode()) == []


# --pace: every attempt takes seconds on its worker, so w1 is killed in the middle of one (the
# PostgreSQL variant at a faster pace, to keep CI's wall time: its attempts still last seconds).
KILL_PACE = {"sqlite": "0.05", "postgresql": "0.02"}


def test_worker_killed_mid_attempt_is_interrupted_and_run_elsewhere(redis_server, workers, quickstart_copy, run_store,
                                                                   tmp_path):
    workers.start_many(NAMES)
    runs = tmp_path / "runs"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--pace", KILL_PACE[run_store.backend],
                                        *run_store.args), cwd=tmp_path / "coord")
    victim = wait_until(lambda: query(runs, "SELECT task_id, number FROM attempt WHERE worker = 'w1' "
                                            "AND outcome = 'running'"), 120, "an attempt running on w1")[0]
    workers.kill("w1")
    assert finish(proc, tmp_path / "coord") == 0, coordinator_log(tmp_path / "coord")[-4000:]

    state = end_state(only_run_dir(runs))  # no task integrated twice, every attempt closed
    assert set(state["status"].values()) == {"done"}
    task_id, number = victim
    rows = {(t, n): (w, o, f) for t, n, w, o, f in _attempts(runs)}
    assert rows[(task_id, number)] == ("w1", "interrupted", "interrupted")
    later = [w for (t, n), (w, o, _) in rows.items() if t == task_id and n > number and o == "succeeded"]
    assert later and later[0] != "w1"
    kinds = {k for (k,) in query(runs, "SELECT kind FROM event")}
    assert {"attempt.interrupted", "worker.lost"} <= kinds


def test_late_duplicate_result_is_rejected(redis_server, workers, quickstart_copy, tmp_path):
    workers.start_many(NAMES)
    monitor = Monitor(redis_server)
    runs = tmp_path / "runs"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--pace", "0.02"), cwd=tmp_path / "coord")
    # The first result a worker sent: pushed again once its attempt is over, as a late duplicate.
    first = wait_until(lambda: next((line for line in monitor.lines if line.startswith("RPUSH hybrid-tui:results:")), None),
                       120, "a first result")
    body = first.split(" ", 2)[2]
    outcome = json.loads(json.loads(body) if body.startswith('"') else body)
    wait_until(lambda: query(runs, "SELECT 1 FROM attempt WHERE task_id = ? AND number = ? AND outcome != 'running'",
                             (outcome["task_id"], outcome["attempt"])), 60, "the first attempt to settle")
    redis_server.client().rpush(f"hybrid-tui:results:{outcome['run_id']}", json.dumps(outcome))
    wait_until(lambda: query(runs, "SELECT 1 FROM event WHERE kind = 'worker.result_rejected' AND task_id = ?",
                             (outcome["task_id"],)), 60, "the duplicate to be rejected")
    assert finish(proc, tmp_path / "coord") == 0, coordinator_log(tmp_path / "coord")[-4000:]
    state = end_state(only_run_dir(runs))
    assert set(state["status"].values()) == {"done"}
    trailers = Counter(c["task"] for c in branch_commits(state["repo"], state["branch"]))
    assert trailers[outcome["task_id"]] == 1


def test_redis_restarted_mid_run(redis_server, workers, quickstart_copy, tmp_path):
    workers.start_many(NAMES)
    runs = tmp_path / "runs"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--pace", "0.03"), cwd=tmp_path / "coord")
    wait_until(lambda: query(runs, "SELECT 1 FROM attempt WHERE outcome = 'succeeded' AND phase != 'planning'"),
               120, "a first task done")
    redis_server.restart()  # every key and queued message is lost (no snapshots)
    assert finish(proc, tmp_path / "coord") == 0, coordinator_log(tmp_path / "coord")[-4000:]
    state = end_state(only_run_dir(runs))
    assert set(state["status"].values()) == {"done"}
    assert sorted(state["trailers"]) == sorted(state["status"])


def test_coordinator_killed_and_resumed(redis_server, workers, quickstart_copy, run_store, tmp_path):
    workers.start_many(NAMES)
    runs = tmp_path / "runs"
    coord = tmp_path / "coord"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--pace", "0.05", *run_store.args),
                             cwd=coord)
    wait_until(lambda: query(runs, "SELECT 1 FROM attempt WHERE outcome = 'succeeded' AND phase != 'planning'"),
               120, "a first task done")
    wait_until(lambda: query(runs, "SELECT 1 FROM attempt WHERE outcome = 'running' AND worker != ''"),
               60, "an attempt running on a worker")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    run_dir = only_run_dir(runs)
    resumed = start_coordinator("resume", str(run_dir), "--headless", "--broker", redis_server.url,
                                "--lease-seconds", "2", cwd=coord)
    assert finish(resumed, coord) == 0, coordinator_log(coord)[-4000:]
    state = end_state(run_dir)
    assert set(state["status"].values()) == {"done"}
    assert sorted(state["trailers"]) == sorted(state["status"])
    assert "interrupted" in {o for outcomes in state["outcomes"].values() for o in outcomes}


def _take_message(client, queue: str, timeout: float = 120) -> dict:
    """The next attempt message on a worker's queue, read as a worker's Celery would (kombu's
    Redis transport: a JSON envelope, the body base64 JSON ``[args, kwargs, embed]``)."""
    item = client.blpop([queue], timeout=timeout)
    assert item is not None, f"no message on {queue}"
    envelope = json.loads(item[1])
    assert envelope["properties"]["body_encoding"] == "base64"
    args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    assert envelope["headers"]["task"] == "hybrid_tui.run_attempt" and not kwargs
    return args[0]


def test_hostile_patches_from_a_worker_are_rejected(redis_server, quickstart_copy, tmp_path):
    """A hostile 'worker' (this test, on the real queue) answers with patches that a symlink
    out, a path under .git/, and a tree the patch does not rebuild: each attempt fails with
    the rejection, nothing lands on the mission branch."""
    client = redis_server.client(timeout=None)  # BLPOP waits longer than a read timeout
    advert = {"name": "evil", "host": "evil-host", "pid": 1, "slots": 1, "backends": ["replay"], "started_at": 0}
    client.set("hybrid-tui:worker:evil", json.dumps(advert), ex=600)
    runs = tmp_path / "runs"
    coord = tmp_path / "coord"
    proc = start_coordinator(*_run_args(quickstart_copy, runs, redis_server.url, "--lease-seconds", "30"), cwd=coord)
    try:
        hostile = ["symlink", "git-dir", "tree"]
        seen = []
        for kind in hostile:
            msg = _take_message(client, "hybrid-tui.worker.evil")
            assert msg["worker"] == "evil" and "ANTHROPIC" not in json.dumps(msg)
            assert client.get(f"hybrid-tui:lease:{msg['token']}") == msg["token"].encode()  # the lease is live
            wt = checkout_base(tmp_path / "evil-cache.git", msg["endpoint"], msg["base"], tmp_path / f"evil-{kind}")
            if kind == "symlink":
                os.symlink("/etc/passwd", wt / "passwd")
                patch, tree = make_patch(wt, msg["base"])
            elif kind == "tree":
                (wt / "inventory.py").write_text("pwned = True\n")
                patch, _ = make_patch(wt, msg["base"])
                tree = git(wt, "rev-parse", f"{msg['base']}^{{tree}}").strip()
            else:
                patch = (b"diff --git a/.git/hooks/post-commit b/.git/hooks/post-commit\nnew file mode 100755\n"
                         b"index 0000000..0000001\n--- /dev/null\n+++ b/.git/hooks/post-commit\n@@ -0,0 +1 @@\n+pwned\n")
                tree = "0" * 40
            outcome = {"token": msg["token"], "run_id": msg["run_id"], "task_id": msg["task_id"],
                       "attempt": msg["attempt"], "worker": "evil", "ok": True, "model": msg["model"],
                       "base": msg["base"], "tree": tree, "patch_b64": base64.b64encode(patch).decode()}
            client.rpush(f"hybrid-tui:results:{msg['run_id']}", json.dumps(outcome))
            wait_until(lambda: query(runs, "SELECT outcome, failure_message FROM attempt WHERE task_id = ? AND number = ? "
                                           "AND outcome != 'running'", (msg["task_id"], msg["attempt"])),
                       60, f"the {kind} patch to be judged")
            seen.append((msg["task_id"], msg["attempt"]))
        rows = [query(runs, "SELECT outcome, failure_type, failure_message FROM attempt WHERE task_id = ? AND number = ?",
                      key)[0] for key in seen]
        assert all(o == "failed" and f == "agent_error" and "rejected" in m for o, f, m in rows), rows
        assert "symlink" in rows[0][2] and "rebuilds tree" in rows[2][2]
        run_dir = only_run_dir(runs)
        repo = Path(query(runs, "SELECT repo_path FROM run")[0][0])
        branch = query(runs, "SELECT mission_branch FROM run")[0][0]
        assert branch_commits(repo, branch) == []  # nothing integrated
        assert not list((run_dir / "worktrees").glob("*/passwd"))
    finally:
        proc.kill()
        proc.wait()
