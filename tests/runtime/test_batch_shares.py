"""A batched session whose backend reports one spend for the whole session (the ``anthropic``
and ``cli`` backends): each member is stored and recorded with its share, and the recording
says it is a share. Exported and replayed batched, the run costs what the original did: the
shared context, already paid once by the session, is not taken off a second time."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from hybrid_tui.agents.base import BatchMember, ImplementRequest, ImplementResult
from hybrid_tui.agents.fileops import apply_file_operations
from hybrid_tui.spec.models import Usage

from .helpers import drive, hybrid, only_run_dir, task, write_mission
from .test_record_replay import run_facts

pytestmark = pytest.mark.slow

BATCH_POLICY = ('\n[policies.batch]\nmax_tasks = 3\nmax_estimate_minutes = 5\ndomains = ["docs"]\n'
                'shared_context_tokens = 5000\n')
SESSION_USAGE = Usage(input_tokens=30_000, output_tokens=1_200)


class OneSession:
    """An agent that does a whole batch in one session and reports only the session's usage
    (no ``per_task``), as the Claude and agent-CLI backends do."""

    name = "session"

    def __init__(self) -> None:
        self.sessions: list[list[str]] = []

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        members = request.batch or (BatchMember(request.task),)
        self.sessions.append([m.task.task_id for m in members])
        touched: list[str] = []
        for member in members:
            touched += await anyio.to_thread.run_sync(apply_file_operations, request.sandbox,
                                                      member.task.file_operations)
        return ImplementResult(ok=True, model=request.model, usage=SESSION_USAGE,
                               cost_usd=request.cost_of(request.model, SESSION_USAGE), files_touched=touched)


def test_a_session_split_by_share_is_recorded_as_a_share_and_replays_at_the_same_cost(tmp_path: Path):
    from hybrid_tui.app.launch import start_run
    from hybrid_tui.runtime.record import read_recordings
    from hybrid_tui.vocabulary import EXIT_OK

    docs = [task(t, domain="docs") for t in ("d1", "d2", "d3")]
    mission = write_mission(tmp_path / "m", docs, mission=BATCH_POLICY)
    store, _run_id, coordinator = start_run(mission, tmp_path / "runs", backend="replay", agents=1)
    agent = OneSession()
    coordinator.implementer = agent
    try:
        assert drive(coordinator) == EXIT_OK
    finally:
        store.close()
    assert agent.sessions == [["d1", "d2", "d3"]]  # one session did all three
    run_dir = only_run_dir(tmp_path / "runs")
    original = run_facts(run_dir)
    shares = {a[0]: (a[4], a[5], a[6]) for a in original["attempts"]}
    assert sum(s[1] for s in shares.values()) == SESSION_USAGE.input_tokens
    assert sum(s[2] for s in shares.values()) == SESSION_USAGE.output_tokens
    session_cost = sum(s[0] for s in shares.values())

    recordings = read_recordings(run_dir)
    for task_id, (cost, input_tokens, output_tokens) in shares.items():
        (recorded,) = recordings[task_id].attempts
        assert recorded.batch_share is True
        assert (recorded.usage.input_tokens, recorded.usage.output_tokens) == (input_tokens, output_tokens)
        assert recorded.cost_usd == pytest.approx(cost)

    exported = tmp_path / "exported"
    hybrid("export-replay", str(run_dir), str(exported), "--pace", "0", cwd=tmp_path, check_exit=0)
    hybrid("run", str(exported), "--headless", "--agents", "1", "--runs-dir", str(tmp_path / "replayed"),
           cwd=tmp_path, check_exit=0)
    replayed = run_facts(only_run_dir(tmp_path / "replayed"))
    assert replayed["tree"] == original["tree"]
    assert sum(a[5] for a in replayed["attempts"]) == SESSION_USAGE.input_tokens
    assert sum(a[4] for a in replayed["attempts"]) == pytest.approx(session_cost)
