"""Resource monitor: thresholds pause and resume a real run, samples land in the store, a
validation command over its memory cap fails as resource_exhausted, and a full disk
(ENOSPC injected while integrating or writing the store) leaves a paused run whose store and
mission branch are consistent, and which a resume finishes with one commit per task."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import anyio
import peewee as pw
import pytest

from hybrid_tui.runtime.eventlog import read_events_jsonl
from hybrid_tui.app.launch import open_run, start_run
from hybrid_tui.runtime.disk import disk_full_reason
from hybrid_tui.runtime.monitor import (
    Reading,
    ResourceGuard,
    ResourceMonitor,
    ResourceSampler,
)
from hybrid_tui.spec.models import PoliciesSection
from hybrid_tui.store import models as m
from hybrid_tui.store.db import Store
from hybrid_tui.workspace.git import MissionRepo

from .helpers import branch_commits, hybrid, only_run_dir, py, read_store, task, write_mission

FAST_SAMPLES = "\n[policies]\nsample_interval_seconds = 0.02\n"


class FakeReadings:
    """Injected machine: the test sets the values the monitor sees."""

    def __init__(self, memory: float = 40.0, disk: float = 50.0, repo_disk: float = 50.0):
        self.memory, self.disk, self.repo_disk = memory, disk, repo_disk
        self.calls = 0

    def __call__(self, run_dir, repo_path, task_pids, worktrees) -> Reading:
        self.calls += 1
        return Reading(cpu_percent=12.5, memory_percent=self.memory, disk_percent=self.disk,
                       disk_free_bytes=10 * 2**30, repo_disk_percent=self.repo_disk,
                       coordinator_rss_bytes=80 * 2**20, open_files=9)


async def wait_for(predicate: Callable[[], Any], what: str, limit: float = 60.0) -> None:
    """Poll ``predicate`` (a hang guard, not a timing assertion)."""
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.01)


def run_row(run_id: str) -> m.Run:
    return m.Run.get_by_id(run_id)


def event_kinds(run_id: str) -> list[str]:
    return [e.kind for e in m.Event.select().where(m.Event.run == run_id).order_by(m.Event.seq)]


def chain_mission(root: Path, policies: str = FAST_SAMPLES) -> Path:
    return write_mission(root, [task("a"), task("b", deps=["a"]), task("c", deps=["b"])], mission=policies)


# ------------------------------------------------------------------ the pure guard
def test_guard_pauses_above_the_thresholds_only():
    guard = ResourceGuard(PoliciesSection())
    assert guard.evaluate(90.0, 95.0, now=0).action is None  # "memory > 90 %", "disk > 95 %"
    decision = guard.evaluate(90.5, 10.0, now=1)
    assert decision.action == "pause" and decision.metric == "memory" and decision.threshold == 90
    assert "memory 90.5% > 90%" in decision.reason and "resume when resolved" in decision.reason
    assert guard.evaluate(99.0, 10.0, now=2).action is None  # already paused for memory
    disk = guard.evaluate(99.0, 96.0, now=3)
    assert disk.action == "pause" and disk.metric == "disk" and "memory" in disk.reason and "disk 96.0%" in disk.reason
    # No resume thresholds configured: only the operator resumes, however long it is fine.
    for t in range(4, 500, 50):
        assert guard.evaluate(10.0, 10.0, now=t).action is None
    assert guard.paused


def test_guard_resumes_after_staying_below_the_lower_threshold():
    guard = ResourceGuard(PoliciesSection(memory_resume_percent=80, resume_after_seconds=30))
    assert guard.evaluate(95, 10, now=0).action == "pause"
    assert guard.evaluate(85, 10, now=10).action is None  # below 90 but not below 80
    assert guard.evaluate(79, 10, now=20).action is None  # below 80 since t=20
    assert guard.evaluate(81, 10, now=45).action is None  # back above: the wait starts again
    assert guard.evaluate(70, 10, now=50).action is None
    assert guard.evaluate(70, 10, now=79).action is None
    decision = guard.evaluate(70, 10, now=80)
    assert decision.action == "resume" and "memory 70.0% < 80%" in decision.reason
    assert not guard.paused


def test_guard_needs_every_tripped_metric_resumable_and_rearms_after_an_operator_resume():
    guard = ResourceGuard(PoliciesSection(memory_resume_percent=80, resume_after_seconds=1))
    guard.evaluate(95, 97, now=0)  # memory and disk; disk has no resume threshold
    assert guard.evaluate(10, 10, now=100).action is None and guard.paused
    guard.resumed_by_operator(95, 97)  # the operator resumed while both are still high
    assert guard.evaluate(96, 98, now=101).action is None  # seen by the operator: no new pause
    assert guard.evaluate(50, 50, now=102).action is None  # dropped below: armed again
    assert guard.evaluate(91, 50, now=103).action == "pause"


# ------------------------------------------------------------------ the sampler
def test_psutil_sampler_reads_the_machine_and_attributes_a_validation_tree(tmp_path: Path):
    worktree = tmp_path / "wt" / "agent-01"
    worktree.mkdir(parents=True)
    # A process tree (bash -> python holding ~30 MB) running in the task's worktree, a child of ours.
    child = subprocess.Popen(["bash", "-c", f"{py('b = bytearray(30 * 2**20); import time; time.sleep(60)')}; true"],
                             cwd=worktree)
    try:
        sampler = ResourceSampler(tmp_path, tmp_path)
        # The tree's memory grows as Python starts; sample until the allocation shows.
        for _ in range(500):
            reading = sampler.read({"T1": worktree})
            if reading.tasks.get("T1", {}).get("rss", 0) > 30 * 2**20:
                break
            time.sleep(0.02)
        assert reading.tasks["T1"]["processes"] >= 2  # bash and its python child
        assert reading.tasks["T1"]["rss"] > 30 * 2**20
        assert 0 < reading.memory_percent <= 100 and 0 < reading.disk_percent <= 100
        assert reading.disk_free_bytes > 0 and reading.coordinator_rss_bytes > 0
        # Registered pids work without the worktree rule too.
        sampler.register("T2", child.pid)
        assert sampler.read({}).tasks["T2"]["processes"] >= 2
    finally:
        child.kill()
        child.wait()


def test_samples_are_kept_for_recent_minutes_and_one_per_minute_before(tmp_path: Path):
    root = chain_mission(tmp_path / "mission")
    store, run_id, c = start_run(root, tmp_path / "runs")
    try:
        sampler = ResourceSampler(c.run_dir, c.run_dir, readings=FakeReadings(), interval=10,
                                  keep_all_seconds=600, downsample_seconds=60)
        start = 1_000_020.0
        for i in range(720):  # two hours, one sample every 10 s
            now = start + i * 10
            sampler.write(store, run_id, sampler.read(), now)
        end = start + 719 * 10
        sampler.compact(run_id, end)  # compaction runs once a minute; the last minute's is due now
        rows = [r.ts for r in m.ResourceSample.select().where(m.ResourceSample.run == run_id).order_by(m.ResourceSample.ts)]
        recent = [ts for ts in rows if ts >= end - 600]
        older = [ts for ts in rows if ts < end - 600]
        assert len(recent) == 61  # every sample of the last ten minutes
        minutes = [int(ts // 60) for ts in older]
        assert len(minutes) == len(set(minutes))  # at most one per minute before that
        assert len(older) >= 100  # ... and every minute still has its sample
        assert rows[0] == start
    finally:
        store.close()


# ------------------------------------------------------------------ thresholds on a real run
def test_memory_threshold_pauses_dispatch_until_the_operator_resumes(tmp_path: Path):
    root = chain_mission(tmp_path / "mission")
    store, run_id, c = start_run(root, tmp_path / "runs", agents=2, exit_on_policy_pause=False)
    fake = FakeReadings(memory=95.0)
    c.monitor = ResourceMonitor(c, readings=fake)
    result: dict[str, int] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            async def drive() -> None:
                result["code"] = await c.run()

            tg.start_soon(drive)
            await wait_for(lambda: run_row(run_id).status == "paused", "paused")
            run = run_row(run_id)
            assert run.pause_reason.startswith("resources: memory 95.0% > 90% (policies.memory_pause_percent)")
            pause = m.Event.get((m.Event.run == run_id) & (m.Event.kind == "pause.resource"))
            assert pause.level == "warning" and json.loads(pause.data_json)["threshold"] == 90
            # Nothing was dispatched while paused, even as the value drops (no resume threshold set).
            fake.memory = 50.0
            seen = fake.calls
            await wait_for(lambda: fake.calls >= seen + 5, "more samples")
            assert run_row(run_id).status == "paused"
            assert m.Attempt.select().where((m.Attempt.run == run_id) & (m.Attempt.phase != "planning")).count() == 0
            store.enqueue_control(run_id, "resume", source="test")

    try:
        anyio.run(main)
        assert result["code"] == 0
        assert run_row(run_id).status == "finished"
        kinds = event_kinds(run_id)
        assert kinds.index("pause.resource") < kinds.index("run.paused") < kinds.index("run.resumed")
        assert m.Control.get(m.Control.run == run_id).status == "applied"  # resumed by the operator
        assert {t.status for t in m.Task.select().where(m.Task.run == run_id)} == {"done"}
        # The samples the monitor took are in the store (the gauges pane reads them).
        sample = m.ResourceSample.select().where(m.ResourceSample.run == run_id).order_by(m.ResourceSample.ts.desc()).first()
        assert sample.memory_percent == 50.0 and sample.coordinator_rss_bytes == 80 * 2**20
    finally:
        store.close()


def test_disk_threshold_resumes_by_itself_after_staying_below_the_lower_threshold(tmp_path: Path):
    policies = FAST_SAMPLES + "disk_resume_percent = 80\nresume_after_seconds = 0.2\n"
    root = chain_mission(tmp_path / "mission", policies)
    # exit_on_policy_pause stays on (headless): a pause that resumes by itself must not end the run.
    store, run_id, c = start_run(root, tmp_path / "runs", agents=2)
    fake = FakeReadings(repo_disk=97.0)
    c.monitor = ResourceMonitor(c, readings=fake)
    result: dict[str, int] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            async def drive() -> None:
                result["code"] = await c.run()

            tg.start_soon(drive)
            await wait_for(lambda: run_row(run_id).status == "paused", "paused")
            assert "disk 97.0% > 95%" in run_row(run_id).pause_reason
            assert "resumes by itself below disk 80%" in run_row(run_id).pause_reason
            fake.repo_disk = 90.0  # under the pause threshold, above the resume threshold
            seen = fake.calls
            await wait_for(lambda: fake.calls >= seen + 20, "more samples")
            assert run_row(run_id).status == "paused" and "code" not in result
            fake.repo_disk = 60.0

    try:
        anyio.run(main)
        assert result["code"] == 0
        kinds = event_kinds(run_id)
        assert kinds.index("run.paused") < kinds.index("resume.resource") < kinds.index("run.resumed")
        assert "control.applied" not in kinds
        assert run_row(run_id).status == "finished"
    finally:
        store.close()


# ------------------------------------------------------------------ per-task memory cap
@pytest.mark.slow
def test_validation_over_its_memory_cap_fails_as_resource_exhausted(tmp_path: Path):
    hog = py("b = bytearray(400 * 2**20); import time; time.sleep(120)")
    root = write_mission(tmp_path / "mission", [task("hog", checks=[hog], timeout=300)],
                         mission="\n[policies]\ntask_memory_cap_mb = 64\n")
    runs = tmp_path / "runs"
    hybrid("run", str(root), "--headless", "--runs-dir", str(runs), cwd=tmp_path, check_exit=1)
    store, run = read_store(only_run_dir(runs))
    try:
        attempts = list(m.Attempt.select().where((m.Attempt.task_id == "hog")).order_by(m.Attempt.number))
        # resource_exhausted: one retry by default, then the task needs attention.
        assert [(a.outcome, a.failure_type) for a in attempts] == [("failed", "resource_exhausted")] * 2
        assert "[killed: memory above the cap of 64 MB]" in Path(attempts[0].log_path).read_text()
        task_row = m.Task.get(m.Task.task_id == "hog")
        assert task_row.status == "failed" and task_row.failure_type == "resource_exhausted"
        assert branch_commits(root / "repo", run.mission_branch) == []
    finally:
        store.close()
    leftover = subprocess.run(["pgrep", "-f", "bytearray\\(400"], capture_output=True, text=True).stdout.split()
    assert [pid for pid in leftover if int(pid) != os.getpid()] == []


# ------------------------------------------------------------------ disk full
def test_disk_full_reason_recognises_the_ways_enospc_shows_up():
    assert disk_full_reason(OSError(errno.ENOSPC, "No space left on device", "/x/state.db")).startswith(
        "disk full writing /x/state.db")
    assert disk_full_reason(pw.OperationalError("database or disk is full"))
    wrapped = ExceptionGroup("tg", [RuntimeError("boom"), RuntimeError("git: fatal: No space left on device")])
    assert "No space left on device" in disk_full_reason(wrapped)
    assert disk_full_reason(RuntimeError("boom")) is None
    assert disk_full_reason(OSError(errno.EACCES, "Permission denied")) is None


def _assert_consistent(run_id: str, repo: Path, branch: str) -> None:
    """Store and branch agree: a done task has its commit on the branch and vice versa; nothing
    runs or holds a lock."""
    on_branch = {c["task"]: c["sha"] for c in branch_commits(repo, branch) if c["task"]}
    stored = {r.task_id: r.sha for r in m.IntegrationCommit.select().where(m.IntegrationCommit.run == run_id)}
    done = {t.task_id: t.commit_sha for t in m.Task.select().where((m.Task.run == run_id) & (m.Task.status == "done"))}
    assert stored == done
    assert set(stored) <= set(on_branch) and all(on_branch[t] == sha for t, sha in stored.items())
    assert m.Attempt.select().where((m.Attempt.run == run_id) & (m.Attempt.outcome == "running")).count() == 0
    assert m.FileLock.select().where(m.FileLock.run == run_id).count() == 0
    assert m.Task.select().where((m.Task.run == run_id) & m.Task.status.in_(["running", "validating", "integrating"])).count() == 0


def _resume_to_the_end(tmp_path: Path, run_dir: Path, root: Path) -> None:
    store, run_id, c = open_run(run_dir)
    try:
        assert anyio.run(c.run) == 0
        run = run_row(run_id)
        assert run.status == "finished"
        commits = branch_commits(root / "repo", run.mission_branch)
        assert [c["task"] for c in commits] == ["a", "b", "c"]  # each exactly once, in order
        _assert_consistent(run_id, root / "repo", run.mission_branch)
        kinds = event_kinds(run_id)
        assert "resume.resource" in kinds  # the operator's resume cleared the disk-full pause
        # events.jsonl holds every event of the store, once, in order (lines lost meanwhile caught up).
        lines = read_events_jsonl(Path(run.run_dir) / "events.jsonl")
        seqs = [e.seq for e in m.Event.select().where(m.Event.run == run_id).order_by(m.Event.seq)]
        assert [line["seq"] for line in lines] == seqs
    finally:
        store.close()


def test_enospc_while_integrating_pauses_with_no_partial_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = chain_mission(tmp_path / "mission")
    store, run_id, c = start_run(root, tmp_path / "runs", agents=1)
    real_publish = MissionRepo._publish
    calls = {"n": 0}

    def publish(self, runner, sha, expected, what):
        calls["n"] += 1
        if calls["n"] == 2:  # task b: its commit object exists, the branch has not moved yet
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_publish(self, runner, sha, expected, what)

    monkeypatch.setattr(MissionRepo, "_publish", publish)
    try:
        assert anyio.run(c.run) == 3
        run = run_row(run_id)
        assert run.status == "paused" and run.pause_reason.startswith("disk full: No space left on device")
        assert f"hybrid-tui resume {run_id}" in run.pause_reason
        assert [c["task"] for c in branch_commits(root / "repo", run.mission_branch)] == ["a"]
        _assert_consistent(run_id, root / "repo", run.mission_branch)
        statuses = {t.task_id: t.status for t in m.Task.select().where(m.Task.run == run_id)}
        assert statuses["a"] == "done" and statuses["b"] == "ready" and statuses["c"] == "pending"
        event = m.Event.get((m.Event.run == run_id) & (m.Event.kind == "pause.resource"))
        assert event.level == "error" and "disk full" in event.message
        run_dir = Path(run.run_dir)
    finally:
        store.close()
    monkeypatch.setattr(MissionRepo, "_publish", real_publish)  # space is back
    _resume_to_the_end(tmp_path, run_dir, root)


def test_enospc_in_the_store_after_the_commit_rolls_back_and_resume_reconciles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = chain_mission(tmp_path / "mission")
    store, run_id, c = start_run(root, tmp_path / "runs", agents=1)
    real_add_events = Store.add_events
    failed = {"done": False}

    def add_events(self, rows):  # the event rows of a transaction, inserted just before its commit
        if any(row[2] == "attempt.succeeded" and row[4] == "b" for row in rows) and not failed["done"]:
            failed["done"] = True
            raise pw.OperationalError("database or disk is full")
        return real_add_events(self, rows)

    monkeypatch.setattr(Store, "add_events", add_events)
    try:
        assert anyio.run(c.run) == 3
        run = run_row(run_id)
        assert run.status == "paused" and "database or disk is full" in run.pause_reason
        # b's commit landed, but the transaction recording it rolled back as a whole.
        assert [c["task"] for c in branch_commits(root / "repo", run.mission_branch)] == ["a", "b"]
        b = m.Task.get((m.Task.run == run_id) & (m.Task.task_id == "b"))
        assert b.status == "ready" and b.commit_sha is None
        assert m.IntegrationCommit.select().where(m.IntegrationCommit.task_id == "b").count() == 0
        b_attempt = m.Attempt.get((m.Attempt.run == run_id) & (m.Attempt.task_id == "b"))
        assert b_attempt.outcome == "interrupted"  # not half-recorded as succeeded
        run_dir = Path(run.run_dir)
    finally:
        store.close()
    _resume_to_the_end(tmp_path, run_dir, root)


def test_enospc_writing_events_jsonl_pauses_and_the_file_catches_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from hybrid_tui.runtime import eventlog

    root = chain_mission(tmp_path / "mission")
    store, run_id, c = start_run(root, tmp_path / "runs", agents=1)
    real_write_line = eventlog.EventJsonlWriter._write_line
    state = {"n": 0}

    def write_line(self, line):
        state["n"] += 1
        if state["n"] == 25:
            self._file.write(b'{"seq": 99999, "torn')  # half a line, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real_write_line(self, line)

    monkeypatch.setattr(eventlog.EventJsonlWriter, "_write_line", write_line)
    try:
        assert anyio.run(c.run) == 3
        run = run_row(run_id)
        assert run.status == "paused" and run.pause_reason.startswith("disk full writing ")
        assert "events.jsonl" in run.pause_reason
        _assert_consistent(run_id, root / "repo", run.mission_branch)
        run_dir = Path(run.run_dir)
    finally:
        store.close()
    monkeypatch.setattr(eventlog.EventJsonlWriter, "_write_line", real_write_line)
    _resume_to_the_end(tmp_path, run_dir, root)


def test_psutil_sampler_is_the_default_source(tmp_path: Path):
    sampler = ResourceSampler(tmp_path, tmp_path / "missing" / "repo")
    reading = sampler.read()
    assert 0 < reading.disk_percent <= 100 and reading.repo_disk_percent == pytest.approx(reading.disk_percent)
    assert reading.open_files >= 0 and reading.tasks == {}
    assert sys.platform != "linux" or reading.coordinator_rss_bytes > 0
