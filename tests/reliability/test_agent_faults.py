"""Agents and commands that misbehave: hang, crash, answer garbage, leave stale locks, or move the
mission branch under the coordinator. Each is contained: the attempt fails with the right failure
type, the retry policy runs, the rest of the mission goes on, nothing is overwritten.

Unit-level cousins: tests/agents/test_anthropic_implementer.py (limits, API errors, timeout),
tests/agents/test_cli_agent.py (crash, timeout kill), tests/workspace/test_validation.py
(process-tree kill), tests/workspace/test_git.py (moved branch, stale lock). These go through the
coordinator and the store.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from fakes.messages_server import MessagesServer, Reply, message, tool_use

from hybrid_tui.agents.anthropic.client import make_client
from hybrid_tui.agents.anthropic.implementer import AnthropicImplementer
from hybrid_tui.agents.base import AttemptLimits, ImplementRequest
from hybrid_tui.agents.replay import ReplayImplementer
from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK
from hybrid_tui.app.launch import start_run
from hybrid_tui.spec.models import RetryRule, SisTask
from hybrid_tui.store import models as m
from hybrid_tui.workspace.sandbox import Sandbox

from .helpers import (
    NO_AUTO_PAUSE, attempts_of, branch_commits, cli, drive, end_state, explain, four_task_mission, git,
    only_run_dir, py, read_store, task, write_mission,
)


class ScriptedImplementer:
    """The replay implementer, except for the attempts given a misbehaviour: 'hang' or 'raise'."""

    name = "replay"

    def __init__(self, script: dict[str, list[str]]):
        self.script = script
        self.replay = ReplayImplementer()

    async def implement(self, request: ImplementRequest):
        plan = self.script.get(request.task.task_id, [])
        what = plan[request.attempt - 1] if request.attempt <= len(plan) else plan[-1] if plan and plan[-1] != "ok" else "ok"
        if what == "hang":
            await anyio.sleep(3600)
        if what == "raise":
            raise RuntimeError(f"backend exploded on {request.task.task_id}")
        return await self.replay.implement(request)


def test_hanging_implementer_times_out_and_the_retry_succeeds(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("slow"), task("after", deps=["slow"])])
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.implementer = ScriptedImplementer({"slow": ["hang", "ok"]})
    coordinator.config.agents.attempt_timeout_seconds = 0.5
    try:
        assert drive(coordinator) == EXIT_OK
        first, second = attempts_of("slow")
        assert (first.outcome, first.failure_type) == ("failed", "timeout")
        assert first.failure_message == "attempt exceeded agents.attempt_timeout_seconds=0.5"
        assert (second.outcome, second.failure_type) == ("succeeded", None)
        assert [a.outcome for a in attempts_of("after")] == ["succeeded"]
        run = m.Run.get_by_id(run_id)
        assert [c["task"] for c in branch_commits(Path(run.repo_path), run.mission_branch)] == ["slow", "after"]
    finally:
        store.close()


def test_crashing_implementer_is_an_agent_error_retried_on_another_agent_then_needs_attention(tmp_path: Path):
    mission = write_mission(
        tmp_path / "m", [task("boom"), task("child", deps=["boom"]), task("fine")], mission=NO_AUTO_PAUSE
    )
    # Three agents for two runnable tasks: another agent is always idle for the retry.
    store, run_id, coordinator = start_run(mission, tmp_path / "runs", agents=3)
    coordinator.implementer = ScriptedImplementer({"boom": ["raise"]})
    coordinator.config.policies.retries["agent_error"] = RetryRule(
        max_retries=3, backoff="immediate", action="different_agent"
    )
    try:
        assert drive(coordinator) == EXIT_FAILED
        attempts = attempts_of("boom")
        assert [(a.outcome, a.failure_type) for a in attempts] == [("failed", "agent_error")] * 4  # 3 retries
        assert all(a.failure_message == "RuntimeError: backend exploded on boom" for a in attempts)
        # 'different_agent': no two consecutive attempts on the same agent.
        agents = [a.agent_id for a in attempts]
        assert all(x != y for x, y in zip(agents, agents[1:])), agents
        boom = m.Task.get(m.Task.task_id == "boom")
        assert boom.status == "failed" and "agent_error" in boom.attention_reason
        assert m.Task.get(m.Task.task_id == "child").status == "blocked"
        assert m.Task.get(m.Task.task_id == "fine").status == "done"  # the rest of the mission went on
        assert m.Run.get_by_id(run_id).status == "finished"
    finally:
        store.close()


# -- a Messages API answering 200 with something that is not a message -----------------------------

MALFORMED = {
    "json-string": "garbage",
    "json-list": [1, 2, 3],
    "no-content": {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-test",
                   "stop_reason": "end_turn", "usage": {"input_tokens": 50, "output_tokens": 5}},
    "content-is-a-string": {**message(tool_use("finish", {"summary": "x"}), input_tokens=50, output_tokens=5),
                            "content": "not a list"},
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_api_reply_is_an_agent_error_that_keeps_the_usage_so_far(tmp_path: Path, monkeypatch, name: str):
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / "calc.py").write_text("x = 1\n")
    spec = SisTask.model_validate({"task_id": "t", "title": "T",
                                   "file_operations": [{"op": "intent", "path": "calc.py", "intent": "x"}]})
    with MessagesServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        server.push(message(tool_use("list_files", {}), input_tokens=300, output_tokens=7), Reply(body=MALFORMED[name]))
        request = ImplementRequest(
            run_id="r", task=spec, attempt=1, agent_id="a", model="claude-test", sandbox=Sandbox(worktree),
            log_path=tmp_path / "t.1.log", cost_of=lambda model, usage: usage.input_tokens / 1e6,
            limits=AttemptLimits(max_turns=5),
        )
        result = anyio.run(AnthropicImplementer(lambda: make_client(timeout=5)).implement, request)
    assert server.rejected == []
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert result.message.startswith("malformed API response on turn 2: ")
    spent = 300 + (50 if isinstance(MALFORMED[name], dict) else 0)  # the bad turn's tokens count when it has usage
    assert result.usage.input_tokens == spent
    assert result.cost_usd == pytest.approx(spent / 1e6)
    assert "malformed response" in request.log_path.read_text()


GARBAGE_AGENT = r'''
import os, pathlib, sys
task_id = sys.argv[1]
pathlib.Path(task_id + ".txt").write_text(task_id + "\n")
out = sys.stdout.buffer
out.write(b"\x1b[2J\x1b]0;pwned\x07 not json {\"half\": \n")
out.write(os.urandom(200_000))
out.write(b"\n{\"is_error\": fals\n")
'''


def test_cli_agent_printing_garbage_does_not_break_the_run(tmp_path: Path):
    """Unparseable output is no report (no usage, no cost); the work is judged by validation."""
    script = tmp_path / "agent.py"
    script.write_text(GARBAGE_AGENT)
    template = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{task_id}}"
    check = "import sys, pathlib; t = sys.argv[1]; assert pathlib.Path(t + '.txt').read_text() == t + '\\n'"
    tasks = [task(t, ops=[{"op": "intent", "path": f"{t}.txt", "intent": "write it"}],
                  checks=[f"{shlex.quote(sys.executable)} -c {shlex.quote(check)} {t}"]) for t in ("p", "q")]
    mission = write_mission(tmp_path / "m", tasks)
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", f"[agents]\ncli = {json.dumps(template)}\n")
    (mission / "mission.toml").write_text(toml)
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--json", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert all(isinstance(json.loads(line), dict) for line in proc.stdout.splitlines())
    state = end_state(only_run_dir(runs))
    assert state["status"] == {"p": "done", "q": "done"}
    assert state["outcomes"] == {"p": ["succeeded"], "q": ["succeeded"]}
    store, _ = read_store(only_run_dir(runs))
    try:
        assert {(a.cost_usd, a.input_tokens) for a in m.Attempt.select()} == {(0.0, 0)}
    finally:
        store.close()


def test_validation_that_forks_and_hangs_has_its_whole_tree_killed(tmp_path: Path):
    pids = tmp_path / "pids"
    fork_and_hang = py(
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}} {{child.pid}}\\n')\n"
        "time.sleep(600)"
    )
    mission = write_mission(tmp_path / "m", [task("hangs", checks=[fork_and_hang], timeout=1), task("fine")],
                            mission=NO_AUTO_PAUSE)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.config.policies.retries["timeout"] = RetryRule(max_retries=1, backoff="immediate")
    try:
        assert drive(coordinator) == EXIT_FAILED
        assert [(a.outcome, a.failure_type) for a in attempts_of("hangs")] == [("failed", "timeout")] * 2
        assert "[timed out after 1 s; process tree killed]" in Path(attempts_of("hangs")[0].log_path).read_text()
        assert m.Task.get(m.Task.task_id == "fine").status == "done"
    finally:
        store.close()
    spawned = [int(p) for line in pids.read_text().split("\n") if line for p in line.split()]
    assert len(spawned) == 4  # two attempts, each a command and its forked child
    for pid in spawned:
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"{pid} outlived the timeout"
        except psutil.NoSuchProcess:
            pass


def test_stale_index_locks_left_by_a_crash_are_cleared_on_resume(tmp_path: Path):
    mission = four_task_mission(tmp_path / "m")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--json", "--agents", "2", "--runs-dir", str(runs), cwd=tmp_path,
               env={"HYBRID_TUI_CRASH_AT": "implemented:b"})
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    run_dir = only_run_dir(runs)
    # What a git killed mid-command leaves: index.lock in every worktree and in the repository.
    locks = [Path(git(wt, "rev-parse", "--absolute-git-dir").strip()) / "index.lock"
             for wt in sorted((run_dir / "worktrees").iterdir()) if wt.is_dir()]
    locks.append(mission / "repo" / ".git" / "index.lock")
    assert len(locks) == 3
    for lock in locks:
        lock.write_text("")
    proc = cli("resume", str(run_dir), "--headless", "--json", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert not any(lock.exists() for lock in locks)
    state = end_state(run_dir)
    assert set(state["status"].values()) == {"done"}
    assert state["outcomes"]["b"] == ["interrupted", "succeeded"]


def test_mission_branch_moved_by_someone_else_is_reported_and_never_overwritten(tmp_path: Path):
    """Task b's validation (standing in for a person with a terminal) commits onto the mission branch."""
    move = (
        "set -e; cd {repo}; tree=$(git rev-parse hybrid/moved^{{tree}}); "
        "sha=$(git -c user.name=someone -c user.email=s@e commit-tree $tree -p hybrid/moved -m 'someone else'); "
        "git update-ref refs/heads/hybrid/moved $sha; echo $sha > {out}"
    )
    out = tmp_path / "foreign.sha"
    repo = tmp_path / "m" / "repo"
    mission = write_mission(
        tmp_path / "m",
        [task("a"), task("b", deps=["a"], checks=[move.format(repo=shlex.quote(str(repo)), out=shlex.quote(str(out)))]),
         task("c", deps=["b"])],
        mission=NO_AUTO_PAUSE,
    )
    toml = (mission / "mission.toml").read_text().replace('repo = "repo"', 'repo = "repo"\nmission_branch = "hybrid/moved"')
    (mission / "mission.toml").write_text(toml)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    try:
        # Every task ends terminal (b failed, c blocked), so the run ends: exit 1, not a hang.
        assert drive(coordinator) == EXIT_FAILED
        foreign = out.read_text().strip()
        assert git(repo, "rev-parse", "hybrid/moved").strip() == foreign  # not overwritten, not force-pushed
        assert [c["task"] for c in branch_commits(repo, "hybrid/moved")] == ["a", ""]  # a, then someone else
        b = m.Task.get(m.Task.task_id == "b")
        assert b.status == "failed" and b.failure_type == "git_conflict"
        assert "moved by someone else" in b.attention_reason and foreign[:12] in b.attention_reason
        assert m.Task.get(m.Task.task_id == "c").status == "blocked"
        paused = m.Event.get(m.Event.kind == "run.paused")  # dispatching stopped for the operator
        assert paused.level == "warning" and "nothing was overwritten" in paused.message
    finally:
        store.close()
