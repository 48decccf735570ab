"""Planning (L2) retries transient failures under the mission's policies; an invalid plan is
a planning failure for the operator, not a retry loop."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_tui.agents.base import PlanResult
from hybrid_tui.agents.replay import ReplayPlanner
from hybrid_tui.vocabulary import EXIT_OK, EXIT_STOPPED
from hybrid_tui.app.launch import open_run, start_run
from hybrid_tui.store import models as m

from .helpers import drive, task, write_mission

FAST_NETWORK_RETRIES = (
    '\n[policies.retries.network_error]\nmax_retries = 5\nbackoff = "exponential"\nbase_seconds = 0.01\n'
)


class FlakyPlanner:
    """Fails with ``failures`` (in order) before planning like the replay planner."""

    name = "flaky"

    def __init__(self, failures: list[str], retry_after: float | None = None):
        self.failures = list(failures)
        self.retry_after = retry_after
        self.inner = ReplayPlanner()

    async def plan(self, request):
        if self.failures:
            kind = self.failures.pop(0)
            return PlanResult(ok=False, model=request.model, failure_type=kind, message=f"{kind} on purpose",
                              retry_after=self.retry_after)
        return await self.inner.plan(request)


def planning_attempts() -> list[m.Attempt]:
    return list(m.Attempt.select().where(m.Attempt.phase == "planning").order_by(m.Attempt.number))


def test_network_errors_while_planning_are_retried_then_the_mission_runs(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a"), task("b", deps=["a"])], mission=FAST_NETWORK_RETRIES)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.planner = FlakyPlanner(["network_error", "network_error"])
    try:
        assert drive(coordinator) == EXIT_OK
        assert [(a.outcome, a.failure_type) for a in planning_attempts()] == [
            ("failed", "network_error"), ("failed", "network_error"), ("succeeded", None)
        ]
        retries = list(m.Event.select().where(m.Event.kind == "planning.retry"))
        assert len(retries) == 2 and "network_error, retry 1" in retries[0].message
        assert {t.status for t in m.Task.select()} == {"done"}
    finally:
        store.close()


def test_an_invalid_plan_is_not_retried_and_stops_the_run_with_the_reason(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")], mission=FAST_NETWORK_RETRIES)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.planner = FlakyPlanner(["agent_error"])
    try:
        assert drive(coordinator) != EXIT_OK
        assert [(a.outcome, a.failure_type) for a in planning_attempts()] == [("failed", "agent_error")]
        failed = m.Event.get(m.Event.kind == "planning.failed")
        assert failed.level == "error" and "agent_error on purpose" in failed.message
        assert m.Attempt.select().where(m.Attempt.phase != "planning").count() == 0
    finally:
        store.close()


def test_a_rate_limited_planner_waits_what_the_server_asked(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.planner = FlakyPlanner(["rate_limited"], retry_after=0.5)
    try:
        assert drive(coordinator) == EXIT_OK
        retry = m.Event.get(m.Event.kind == "planning.retry")
        assert "rate_limited, retry 1 in 0.5 s" in retry.message  # the header, not exponential backoff
        first, second = planning_attempts()
        assert second.started_at - first.finished_at >= 0.5
    finally:
        store.close()


class FailsFor:
    """Fails (agent_error) on the issues in ``failing``; plans the others like the replay planner."""

    name = "fails-for"

    def __init__(self, *failing: str):
        self.failing = set(failing)
        self.inner = ReplayPlanner()

    async def plan(self, request):
        if request.issue_id in self.failing:
            return PlanResult(ok=False, model=request.model, failure_type="agent_error",
                              message=f"no valid SIS for {request.issue_id}\nsecond line")
        return await self.inner.plan(request)


def add_issue(mission: Path, issue_id: str, tasks: list[dict]) -> None:
    (mission / "issues" / f"{issue_id}.md").write_text(f"# {issue_id}\n\nMore work.\n")
    sis = {"sis_version": "1.0", "issue": {"id": issue_id, "title": issue_id}, "tasks": tasks}
    (mission / "sis" / f"{issue_id}.json").write_text(json.dumps(sis))


def test_a_planning_failure_pauses_the_run_naming_the_issue_and_resume_plans_it_again(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    add_issue(mission, "002-more", [task("b")])
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.planner = FailsFor("002-more")
    try:
        assert drive(coordinator) == EXIT_STOPPED
        run = m.Run.get_by_id(run_id)
        assert run.status == "paused" and run.finished_at is None
        assert "002-more (agent_error: no valid SIS for 002-more)" in run.pause_reason
        assert f"hybrid-tui resume {run_id}" in run.pause_reason
        # Nothing ran on the partial plan: the planned issue's task waits for the resume.
        assert m.Attempt.select().where(m.Attempt.phase != "planning").count() == 0
    finally:
        store.close()

    store, run_id, coordinator = open_run(run_id, tmp_path / "runs")
    coordinator.planner = FailsFor()  # the cause was fixed
    try:
        assert drive(coordinator) == EXIT_OK
        planned = [(a.task_id, a.outcome) for a in planning_attempts() if a.outcome == "succeeded"]
        assert sorted(planned) == [("plan:001-work", "succeeded"), ("plan:002-more", "succeeded")]
        assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "done"}
    finally:
        store.close()


class SlowPlanner:
    """The replay planner, after ``gate`` is set (a planner call that takes a while)."""

    name = "slow"

    def __init__(self):
        import anyio

        self.gate = anyio.Event()
        self.inner = ReplayPlanner()

    async def plan(self, request):
        await self.gate.wait()
        return await self.inner.plan(request)


def test_the_coordinator_keeps_its_heartbeat_while_planning(tmp_path: Path):
    """A console attached from another machine knows a coordinator by its heartbeat: planning
    (minutes with a real model) must not look like a dead coordinator."""
    import anyio

    mission = write_mission(tmp_path / "m", [task("a")])
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    planner = coordinator.planner = SlowPlanner()
    coordinator.heartbeat_interval = 0.05
    beats: list[float] = []

    async def script() -> None:
        while len(beats) < 3:  # three distinct heartbeats while the planner still works
            run = m.Run.get_by_id(run_id)
            if run.status == "planning" and run.heartbeat_at and run.heartbeat_at not in beats:
                beats.append(run.heartbeat_at)
            await anyio.sleep(0.02)
        planner.gate.set()

    try:
        assert drive(coordinator, script) == EXIT_OK
        assert len(beats) == 3 and beats == sorted(beats)
    finally:
        store.close()


class WritesItsOwnSis:
    """A planner like Claude's (``uses_recorded_sis = False``) that fails every issue it is given."""

    name = "own-sis"
    uses_recorded_sis = False

    def __init__(self):
        self.asked: list[str] = []

    async def plan(self, request):
        self.asked.append(request.issue_id)
        return PlanResult(ok=False, model=request.model, failure_type="agent_error", message="the model refused")


def _paused_planning_002(tmp_path: Path) -> tuple[Path, str]:
    """A run of issue 001-work (reviewed SIS, task a) and 002-more (no SIS), paused because
    planning 002-more failed: (mission folder, run id)."""
    mission = write_mission(tmp_path / "m", [task("a")])
    (mission / "issues" / "002-more.md").write_text("# More\n\nMore work.\n")
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.planner = WritesItsOwnSis()
    try:
        assert drive(coordinator) == EXIT_STOPPED
        assert coordinator.planner.asked == ["002-more"]
        assert "reviewed" in m.Run.get_by_id(run_id).pause_reason
    finally:
        store.close()
    return mission, run_id


def test_a_reviewed_sis_added_after_a_planning_failure_is_used_by_the_resume(tmp_path: Path):
    """The pause names two ways out: fix the cause, or add a reviewed sis/<issue>.json. The
    second must not drop the issue: resume runs the reviewed SIS's tasks as they are."""
    mission, run_id = _paused_planning_002(tmp_path)

    sis = {"sis_version": "1.0", "issue": {"id": "002-more", "title": "More"}, "tasks": [task("b", deps=["a"])]}
    (mission / "sis" / "002-more.json").write_text(json.dumps(sis))
    store, run_id, coordinator = open_run(run_id, tmp_path / "runs")
    coordinator.planner = WritesItsOwnSis()
    try:
        assert drive(coordinator) == EXIT_OK
        assert coordinator.planner.asked == []  # reviewed now: not planned
        assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "done"}
        added = m.Event.get(m.Event.kind == "planning.reviewed")
        assert "002-more" in added.message and "used as it is" in added.message
    finally:
        store.close()


def test_a_reviewed_sis_added_later_whose_task_ids_are_taken_is_a_planning_failure(tmp_path: Path):
    mission, run_id = _paused_planning_002(tmp_path)
    # Valid in the mission folder on its own, but "a" is issue 001-work's task in the run.
    (mission / "sis" / "001-work.json").write_text(json.dumps(
        {"sis_version": "1.0", "issue": {"id": "001-work", "title": "Work"}, "tasks": [task("a0")]}))
    (mission / "sis" / "002-more.json").write_text(json.dumps(
        {"sis_version": "1.0", "issue": {"id": "002-more", "title": "More"}, "tasks": [task("a")]}))
    store, run_id, coordinator = open_run(run_id, tmp_path / "runs")
    coordinator.planner = WritesItsOwnSis()
    try:
        assert drive(coordinator) == EXIT_STOPPED
        reason = m.Run.get_by_id(run_id).pause_reason
        assert "002-more (sis/002-more.json: task id(s) a already belong to another issue" in reason
        assert {t.task_id: t.issue_id for t in m.Task.select()} == {"a": "001-work"}
    finally:
        store.close()
