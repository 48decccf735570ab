"""The offline backends (replay, sim) against a real sandbox on a real folder."""

from __future__ import annotations

from pathlib import Path

import anyio

from hybrid_tui.agents.base import ImplementRequest
from hybrid_tui.agents.replay import ReplayImplementer
from hybrid_tui.agents.sim import SimImplementer
from hybrid_tui.spec.models import RecordedAttempt, SisTask
from hybrid_tui.workspace.sandbox import Sandbox

SPEC = SisTask.model_validate({
    "task_id": "t1",
    "title": "Edit a",
    "estimated_tokens": {"input": 10_000, "output": 2_000},
    "file_operations": [
        {"op": "edit", "path": "a.txt", "old_string": "old\n", "new_string": "new\n"},
        {"op": "create", "path": "pkg/b.txt", "content": "b\n"},
    ],
})


def request(root: Path, *, recorded: RecordedAttempt | None = None, attempt: int = 1) -> ImplementRequest:
    return ImplementRequest(
        run_id="r", task=SPEC, attempt=attempt, agent_id="agent-01", model="claude-haiku-4-5",
        sandbox=Sandbox(root, declared=SPEC.declared_files), log_path=root / "log.txt",
        cost_of=lambda model, usage: usage.input_tokens / 1e6, recorded=recorded,
    )


def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "a.txt").write_text("old\n")
    return root


def test_replay_applies_the_sis_operations_without_a_recording(tmp_path: Path):
    root = worktree(tmp_path)
    result = anyio.run(ReplayImplementer().implement, request(root))
    assert result.ok and result.files_touched == ["a.txt", "pkg/b.txt"]
    assert (root / "a.txt").read_text() == "new\n" and (root / "pkg" / "b.txt").read_text() == "b\n"


def test_replay_applies_the_recorded_attempt_and_its_usage(tmp_path: Path):
    root = worktree(tmp_path)
    recorded = RecordedAttempt.model_validate({
        "file_operations": [{"op": "create", "path": "a.txt", "content": "recorded\n"}],
        "usage": {"input_tokens": 500_000, "output_tokens": 1},
        "model": "claude-sonnet-4-5",
    })
    result = anyio.run(ReplayImplementer().implement, request(root, recorded=recorded))
    assert result.ok and (root / "a.txt").read_text() == "recorded\n"
    assert result.model == "claude-sonnet-4-5" and result.usage.input_tokens == 500_000
    assert result.cost_usd == 0.5
    assert not (root / "pkg").exists()


def test_replay_recorded_failure_touches_no_file(tmp_path: Path):
    root = worktree(tmp_path)
    recorded = RecordedAttempt.model_validate({
        "file_operations": [{"op": "create", "path": "a.txt", "content": "x\n"}], "failure_type": "network_error",
    })
    result = anyio.run(ReplayImplementer().implement, request(root, recorded=recorded))
    assert not result.ok and result.failure_type == "network_error"
    assert (root / "a.txt").read_text() == "old\n"


def test_replay_edit_whose_text_is_gone_is_a_conflict_for_a_human(tmp_path: Path):
    # The file moved on under the planned edit (another task changed that text): retrying
    # the same edit cannot help, so it goes straight to attention as a git_conflict.
    root = worktree(tmp_path)
    (root / "a.txt").write_text("something else\n")
    result = anyio.run(ReplayImplementer().implement, request(root))
    assert not result.ok and result.failure_type == "git_conflict"
    assert "a.txt" in result.message and "conflicts with the mission branch" in result.message


def test_sim_is_seeded_and_touches_no_file_without_git(tmp_path: Path):
    root = worktree(tmp_path)
    sim = SimImplementer(seed=7, failure_rate=0.5, git=False)
    outcomes = [sim.outcome(SPEC, n) for n in range(1, 41)]
    assert outcomes == [SimImplementer(seed=7, failure_rate=0.5).outcome(SPEC, n) for n in range(1, 41)]
    assert 5 < sum(o is not None for o in outcomes) < 35  # roughly half fail, seeded
    assert outcomes != [SimImplementer(seed=8, failure_rate=0.5).outcome(SPEC, n) for n in range(1, 41)]
    for n in range(1, 6):
        result = anyio.run(sim.implement, request(root, attempt=n))
        assert result.ok == (sim.outcome(SPEC, n) is None)
        assert 7_000 <= result.usage.input_tokens <= 13_000
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"] and (root / "a.txt").read_text() == "old\n"


def test_sim_latency_scales_with_pace():
    assert SimImplementer(pace=0).latency(SPEC, 1) == 0
    slow, fast = SimImplementer(pace=0.1).latency(SPEC, 1), SimImplementer(pace=0.01).latency(SPEC, 1)
    assert abs(slow - 10 * fast) < 1e-9 and slow > 0


# ------------------------------------------------------------------ timeout and cancel, git off


class HangingSim:
    """The ``sim`` implementer (git off), except that the attempts named in ``hang`` (task id ->
    attempt numbers) never finish on their own."""

    name = "sim"

    def __init__(self, hang: dict[str, set[int]]):
        self.sim = SimImplementer(seed=1, git=False)
        self.hang = hang
        self.hanging: set[str] = set()

    async def implement(self, request: ImplementRequest):
        if request.attempt in self.hang.get(request.task.task_id, ()):
            self.hanging.add(request.task.task_id)
            await anyio.sleep(3600)
        return await self.sim.implement(request)


NO_AUTO_PAUSE = "\n[policies]\nfailure_rate_pause = 1.0\n"


def attempts_of(task_id: str) -> list:
    from hybrid_tui.store import models as m

    return list(m.Attempt.select().where((m.Attempt.task_id == task_id) & (m.Attempt.phase != "planning"))
                .order_by(m.Attempt.number))


def test_a_hanging_attempt_times_out_with_its_message_and_the_retry_succeeds(tmp_path: Path):
    from hybrid_tui.vocabulary import EXIT_OK
    from hybrid_tui.app.launch import start_run
    from hybrid_tui.runtime.record import read_ledger

    from .helpers import drive, task, write_mission

    mission = write_mission(tmp_path / "m", [task("slow"), task("after", deps=["slow"])], mission=NO_AUTO_PAUSE)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="sim", git=False)
    coordinator.implementer = HangingSim({"slow": {1}})
    coordinator.config.agents.attempt_timeout_seconds = 0.3
    try:
        assert drive(coordinator) == EXIT_OK
        first, second = attempts_of("slow")
        assert (first.outcome, first.failure_type) == ("failed", "timeout")
        assert first.failure_message == "attempt exceeded agents.attempt_timeout_seconds=0.3"
        assert (second.outcome, second.failure_type) == ("succeeded", None)
        assert [a.outcome for a in attempts_of("after")] == ["succeeded"]
        ledger = [(e["task_id"], e["number"], e["outcome"], e["failure_type"], e["output"])
                  for e in read_ledger(coordinator.run_dir)]
        assert ledger[0] == ("slow", 1, "failed", "timeout", "attempt exceeded agents.attempt_timeout_seconds=0.3")
        assert ledger[1:] == [("slow", 2, "succeeded", None, ""), ("after", 1, "succeeded", None, "")]
    finally:
        store.close()


def test_a_cancel_while_the_agent_works_is_a_cancel_not_a_timeout(tmp_path: Path):
    """The attempt's one cancel scope carries the timeout too: the scheduler cancelling the
    attempt before its deadline ends it ``cancelled``, and nothing is recorded for it."""
    from hybrid_tui.vocabulary import EXIT_FAILED
    from hybrid_tui.app.launch import start_run
    from hybrid_tui.runtime.record import read_ledger
    from hybrid_tui.store import models as m

    from .helpers import drive, task, write_mission

    mission = write_mission(tmp_path / "m", [task("root"), task("child", deps=["root"])], mission=NO_AUTO_PAUSE)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="sim", git=False)
    implementer = HangingSim({"child": {1}})
    coordinator.implementer = implementer
    coordinator.config.agents.attempt_timeout_seconds = 60

    async def script() -> None:
        while "child" not in implementer.hanging:
            await anyio.sleep(0.02)
        store.enqueue_control(run_id, "cancel_dependents", source="test", task_id="root")

    try:
        assert drive(coordinator, script) == EXIT_FAILED
        (child,) = attempts_of("child")
        assert (child.outcome, child.failure_type) == ("cancelled", None)
        assert m.Task.get(m.Task.task_id == "child").status == "cancelled"
        assert [(e["task_id"], e["outcome"]) for e in read_ledger(coordinator.run_dir)] == [("root", "succeeded")]
    finally:
        store.close()
