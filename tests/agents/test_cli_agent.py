"""The ``cli`` backend running a small fake agent script (python) in a real git worktree."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import anyio
import pytest

from hybrid_tui.agents.base import AttemptLimits, ImplementRequest
from hybrid_tui.agents.cli import CliImplementer, TemplateError
from hybrid_tui.spec.models import SisTask, Usage
from hybrid_tui.workspace.sandbox import Sandbox

from .conftest import cost_of, git

FAKE_AGENT = r'''
import json, pathlib, sys, time
prompt_file, task_id, mode = sys.argv[1], sys.argv[2], sys.argv[3]
prompt = pathlib.Path(prompt_file).read_text()
assert '"task_id": "sub"' in prompt, prompt
if mode == "sleep":
    import subprocess
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a grandchild to kill too
    time.sleep(60)
if mode == "crash":
    print("something broke", file=sys.stderr)
    sys.exit(3)
calc = pathlib.Path("calc.py")
calc.write_text(calc.read_text() + "\n\ndef sub(a, b):\n    return a - b\n")
pathlib.Path("notes.txt").write_text("feedback seen\n" if "Feedback" in prompt else "first try\n")
print("working...", file=sys.stderr)
report = {"type": "result", "is_error": False, "result": "Added sub() for " + task_id}
if mode == "cost":
    report["total_cost_usd"] = 0.0421
    report["usage"] = {"input_tokens": 1200, "output_tokens": 340, "cache_read_input_tokens": 5000,
                       "cache_creation_input_tokens": 800}
elif mode == "usage-only":
    report["usage"] = {"input_tokens": 1000, "output_tokens": 100}
print(json.dumps(report))
'''


@pytest.fixture
def agent_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_agent.py"
    path.write_text(FAKE_AGENT)
    return path


def template(agent_script: Path, mode: str) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(agent_script))} {{prompt_file}} {{task_id}} {mode}"


def request_for(worktree: Path, tmp_path: Path, **kwargs) -> ImplementRequest:
    task = SisTask.model_validate(
        {"task_id": "sub", "title": "Add sub()", "file_operations": [{"op": "intent", "path": "calc.py", "intent": "add sub"}]}
    )
    return ImplementRequest(
        run_id="run-1", task=task, attempt=kwargs.pop("attempt", 1), agent_id="agent-1", model="claude-test",
        sandbox=Sandbox(worktree, declared=task.declared_files), log_path=tmp_path / "logs" / "sub-1.log",
        cost_of=cost_of, **kwargs,
    )


def test_fake_agent_edits_the_worktree_and_reports_its_cost(worktree, tmp_path, agent_script):
    request = request_for(worktree, tmp_path)
    result = anyio.run(CliImplementer(template(agent_script, "cost")).implement, request)
    assert result.ok, result.message
    assert result.summary == "Added sub() for sub"
    assert "def sub(a, b)" in (worktree / "calc.py").read_text()
    assert result.files_touched == ["calc.py", "notes.txt"]
    assert result.cost_usd == 0.0421  # the agent's own figure wins
    assert result.usage == Usage(input_tokens=1200, output_tokens=340, cache_read_tokens=5000, cache_write_tokens=800)
    log = request.log_path.read_text()
    assert "working..." in log and '"total_cost_usd": 0.0421' in log and "exit status 0" in log
    assert (tmp_path / "logs" / "sub-1.prompt.md").read_text().count('"task_id": "sub"') == 1
    assert git(worktree, "log", "--oneline").count("\n") == 1  # the agent did not commit


def test_usage_without_cost_is_priced_and_feedback_reaches_the_prompt(worktree, tmp_path, agent_script):
    request = request_for(worktree, tmp_path, attempt=2, feedback="AssertionError: sub(5, 3) returned 8")
    result = anyio.run(CliImplementer(template(agent_script, "usage-only")).implement, request)
    assert result.ok
    assert result.cost_usd == pytest.approx(cost_of("claude-test", Usage(input_tokens=1000, output_tokens=100)))
    assert (worktree / "notes.txt").read_text() == "feedback seen\n"
    assert "returned 8" in (tmp_path / "logs" / "sub-1.prompt.md").read_text()


def test_failing_agent_is_an_agent_error(worktree, tmp_path, agent_script):
    request = request_for(worktree, tmp_path)
    result = anyio.run(CliImplementer(template(agent_script, "crash")).implement, request)
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert result.message == "agent command exited with status 3: something broke"  # the CLI's own last words
    assert "something broke" in request.log_path.read_text()


def test_agent_past_its_timeout_is_killed_with_its_children(worktree, tmp_path, agent_script):
    import psutil

    before = {p.pid for p in psutil.process_iter()}
    request = request_for(worktree, tmp_path, limits=AttemptLimits(timeout_seconds=1.5))
    result = anyio.run(CliImplementer(template(agent_script, "sleep")).implement, request)
    assert (result.failure_type, result.message) == ("timeout", "agent command timed out after 1.5s")
    leftovers = [
        p for p in psutil.process_iter(["pid", "cmdline"])
        if p.pid not in before and "time.sleep(60)" in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_missing_command_and_bad_template(worktree, tmp_path):
    result = anyio.run(CliImplementer("no-such-agent-xyz {prompt_file}").implement, request_for(worktree, tmp_path))
    assert result.failure_type == "agent_error" and "not found: no-such-agent-xyz" in result.message
    with pytest.raises(TemplateError):
        CliImplementer("claude -p 'unclosed")
