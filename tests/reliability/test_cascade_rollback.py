"""Cascading rollback (review §5.3 phase 2) on a real run: ``rollback RUN TASK --cascade``
reverts the task and every integrated task built on it, newest first, all or none, and a
SIGKILL at any point of it leaves the branch with all of the reverts or none of them.

The four-task mission: a -> b -> d <- c, each task writing its own file. Rolling back ``a``
with --cascade takes its two integrated dependents ``b`` and ``d`` with it (three commits);
``c`` stays.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hybrid_tui.store import models as m

from .helpers import branch_commits, cli, end_state, explain, git, read_store
from .test_crash_matrix import ALL_DONE, resume, run_mission

pytestmark = pytest.mark.slow

ROLLED_BACK = ALL_DONE | {"a": "rolled_back", "b": "rolled_back", "d": "rolled_back"}


def files_on_branch(run_dir: Path) -> set[str]:
    store, run = read_store(run_dir)
    try:
        return set(git(Path(run.repo_path), "ls-tree", "--name-only", run.mission_branch).split())
    finally:
        store.close()


def reverts_on_branch(run_dir: Path) -> list[str]:
    store, run = read_store(run_dir)
    try:
        return [c["rollback"] for c in branch_commits(Path(run.repo_path), run.mission_branch) if c["rollback"]]
    finally:
        store.close()


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    run_dir, proc = run_mission(tmp_path)
    assert proc.returncode == 0, explain(proc)
    return run_dir


def test_cascade_shows_its_scope_reverts_three_commits_newest_first_and_they_can_land_again(
        finished: Path, tmp_path: Path):
    done_tree = end_state(finished)["tree"]
    proc = cli("rollback", str(finished), "a", "--cascade", "--yes", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    listed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert listed == ["a", "b", "d"]  # the scope, in the order the commits landed (dependency order)

    proc = resume(finished, tmp_path)
    assert proc.returncode == 0, explain(proc)  # a rollback is the operator's decision, not a failure
    after = end_state(finished)
    assert after["status"] == ROLLED_BACK
    assert reverts_on_branch(finished) == ["d", "b", "a"]  # newest first
    assert files_on_branch(finished) == {"README.md", "c.txt"}
    store, _ = read_store(finished)
    try:
        control = m.Control.get(m.Control.command == "rollback")
        assert control.status == "applied" and "rolled back 3 task(s)" in control.result
    finally:
        store.close()

    for task_id in ("a", "b", "d"):
        assert cli("retry", str(finished), task_id, cwd=tmp_path).returncode == 0
    proc = resume(finished, tmp_path)
    assert proc.returncode == 0, explain(proc)
    store, run = read_store(finished)
    try:
        assert {t.task_id: t.status for t in m.Task.select()} == ALL_DONE
        landed = [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch) if c["task"]]
        assert sorted(landed[4:]) == ["a", "b", "d"]  # each landed once more, after its revert
        assert git(Path(run.repo_path), "diff", "--stat", done_tree, run.mission_branch).strip() == ""
    finally:
        store.close()


def test_a_plain_rollback_of_a_task_with_integrated_dependents_reverts_only_it(finished: Path, tmp_path: Path):
    assert cli("rollback", str(finished), "c", cwd=tmp_path).returncode == 0
    assert resume(finished, tmp_path).returncode == 0
    assert reverts_on_branch(finished) == ["c"]


@pytest.mark.parametrize("crash_at, on_branch_after_crash", [
    ("rollback_cascade:b", []),                 # two revert commits built, none published
    ("rollback:a", ["d", "b", "a"]),            # all published, the store not told yet
])
def test_a_kill_during_a_cascade_leaves_all_or_none_and_resume_finishes_it_once(
        finished: Path, tmp_path: Path, crash_at: str, on_branch_after_crash: list[str]):
    assert cli("rollback", str(finished), "a", "--cascade", "--yes", cwd=tmp_path).returncode == 0
    proc = resume(finished, tmp_path, crash_at=crash_at)
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    assert reverts_on_branch(finished) == on_branch_after_crash

    proc = resume(finished, tmp_path)
    assert proc.returncode == 0, explain(proc)
    after = end_state(finished)  # also: no revert twice, every reverted commit marked in the store
    assert after["status"] == ROLLED_BACK
    assert reverts_on_branch(finished) == ["d", "b", "a"]
    store, _ = read_store(finished)
    try:
        assert m.Control.get(m.Control.command == "rollback").status == "applied"
    finally:
        store.close()


def test_a_cascade_whose_scope_changed_since_it_was_confirmed_reverts_nothing(finished: Path, tmp_path: Path):
    store, run = read_store(finished)
    try:
        store.enqueue_control(run.id, "rollback", source="test", task_id="a", cascade=True, scope=["a", "b"])
    finally:
        store.close()
    assert resume(finished, tmp_path).returncode == 0  # nothing changed: every task still done
    assert reverts_on_branch(finished) == []
    store, _ = read_store(finished)
    try:
        control = m.Control.get(m.Control.command == "rollback")
        assert control.status == "rejected"
        assert "scope is now a, b, d" in control.result
    finally:
        store.close()


def test_cascade_without_a_terminal_asks_for_yes_and_sends_nothing(finished: Path, tmp_path: Path):
    proc = cli("rollback", str(finished), "a", "--cascade", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--yes" in proc.stderr
    store, _ = read_store(finished)
    try:
        assert m.Control.select().count() == 0
    finally:
        store.close()


def test_rollback_of_an_unknown_task_is_one_line_and_exit_2(finished: Path, tmp_path: Path):
    proc = cli("rollback", str(finished), "zz", "--cascade", "--yes", cwd=tmp_path)
    assert proc.returncode == 2 and "no task 'zz'" in proc.stderr
