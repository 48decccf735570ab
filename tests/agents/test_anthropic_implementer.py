"""The Claude implementer's tool loop against a scripted Messages API server (real SDK over HTTP),
working in a real git worktree through the real sandbox and running real checks."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import anyio
import pytest

from fakes.messages_server import Reply, error, message, text, tool_use

from hybrid_tui.agents.anthropic.client import NO_RETRY, make_client
from hybrid_tui.agents.anthropic.implementer import AnthropicImplementer
from hybrid_tui.agents.base import AttemptLimits, ImplementRequest
from hybrid_tui.spec.models import SisTask, Usage
from hybrid_tui.workspace.sandbox import Sandbox

from .conftest import CALC, SECRET_KEY, cost_of



def make_task() -> SisTask:
    pytest_cmd = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider test_calc.py"
    return SisTask.model_validate(
        {
            "task_id": "sub",
            "title": "Add sub() to calc.py",
            "file_operations": [{"op": "intent", "path": "calc.py", "intent": "add sub(a, b) returning a - b"}],
            "validation": {"commands": [pytest_cmd], "timeout_seconds": 120},
        }
    )


def make_request(worktree: Path, tmp_path: Path, *, claim=None, limits=None, feedback="", attempt=1):
    task = make_task()
    return ImplementRequest(
        run_id="run-1",
        task=task,
        attempt=attempt,
        agent_id="agent-1",
        model="claude-test",
        sandbox=Sandbox(worktree, declared=task.declared_files, claim=claim),
        log_path=tmp_path / "logs" / "sub-1.log",
        cost_of=cost_of,
        limits=limits or AttemptLimits(),
        feedback=feedback,
    )


def run(implementer: AnthropicImplementer, request: ImplementRequest):
    return anyio.run(implementer.implement, request)


def tool_results(request_body: dict) -> list[dict]:
    """The tool_result blocks of the newest user message of a recorded request."""
    return [b for b in request_body["messages"][-1]["content"] if b.get("type") == "tool_result"]


def test_reads_edits_sees_failing_checks_fixes_and_finishes(server, client_factory, worktree, tmp_path):
    buggy = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n"
    replies = [
        message(text("Let me look."), tool_use("read_file", {"path": "calc.py"}), input_tokens=2000, cache_write=1500),
        message(tool_use("edit_file", {"path": "calc.py", "old_string": CALC, "new_string": buggy}),
                input_tokens=300, output_tokens=80, cache_read=1500),
        message(tool_use("run_checks", {}), input_tokens=350, output_tokens=10, cache_read=1700),
        message(tool_use("edit_file", {"path": "calc.py", "old_string": "    return a + b\n\n\ndef sub(a, b):\n    return a + b\n",
                                       "new_string": "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"}),
                input_tokens=900, output_tokens=60, cache_read=1900, cache_write=400),
        message(tool_use("run_checks", {}), input_tokens=120, output_tokens=10, cache_read=2300),
        message(tool_use("finish", {"summary": "Added calc.sub"}), input_tokens=200, output_tokens=15, cache_read=2400),
    ]
    server.push(*replies)
    request = make_request(worktree, tmp_path)
    result = run(AnthropicImplementer(client_factory), request)

    assert result.ok, result.message
    assert result.summary == "Added calc.sub"
    assert (worktree / "calc.py").read_text().endswith("def sub(a, b):\n    return a - b\n")
    assert result.files_touched == ["calc.py"]
    # Every response's usage, summed exactly, priced with the request's cost function.
    expected = Usage(
        input_tokens=sum(r["usage"]["input_tokens"] for r in replies),
        output_tokens=sum(r["usage"]["output_tokens"] for r in replies),
        cache_read_tokens=sum(r["usage"]["cache_read_input_tokens"] for r in replies),
        cache_write_tokens=sum(r["usage"]["cache_creation_input_tokens"] for r in replies),
    )
    assert result.usage == expected
    assert result.cost_usd == pytest.approx(cost_of("claude-test", expected))

    sent = server.message_requests
    assert len(sent) == 6
    # The model saw the file with line numbers, then the failing check output, then the passing one.
    assert "return a + b" in tool_results(sent[1])[0]["content"]
    failed = tool_results(sent[3])[0]
    assert failed["is_error"] is True and "FAILED" in failed["content"] and "assert" in failed["content"]
    passed = tool_results(sent[5])[0]
    assert passed["is_error"] is False and passed["content"].startswith("checks passed")

    # Prompt caching: tools, system and the task block are marked; so is the newest turn.
    first = sent[0]
    assert first["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert '"task_id": "sub"' in first["messages"][0]["content"][0]["text"]
    assert sent[2]["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    for body in sent:  # the API allows four breakpoints
        assert json.dumps(body).count('"cache_control"') <= 4

    # The attempt log has the transcript and never the credential.
    log = request.log_path.read_text()
    assert "tool edit_file" in log and "checks FAILED" in log and "Added calc.sub" in log
    assert SECRET_KEY not in log
    assert SECRET_KEY not in repr(result)


def test_feedback_of_the_previous_attempt_opens_the_conversation(server, client_factory, worktree, tmp_path):
    server.push(message(tool_use("finish", {"summary": "done"})))
    request = make_request(worktree, tmp_path, attempt=2, feedback="E   assert calc.sub(5, 3) == 2\nE   assert 8 == 2")
    assert run(AnthropicImplementer(client_factory), request).ok
    first_message = server.message_requests[0]["messages"][0]["content"]
    assert "attempt 1 of this task failed" in first_message[1]["text"]
    assert "assert 8 == 2" in first_message[1]["text"]
    assert "cache_control" not in first_message[1]  # feedback varies: outside the cached prefix


def test_reading_outside_the_worktree_is_refused_as_a_tool_error(server, client_factory, worktree, tmp_path):
    server.push(
        message(tool_use("read_file", {"path": "../outside"})),
        message(tool_use("read_file", {"path": "/etc/passwd"})),
        message(tool_use("finish", {"summary": "gave up"})),
    )
    result = run(AnthropicImplementer(client_factory), make_request(worktree, tmp_path))
    assert result.ok  # the loop goes on: the model saw the refusal
    sent = server.message_requests
    refused = tool_results(sent[1])[0]
    assert refused["is_error"] is True and "escapes the repository" in refused["content"]
    assert tool_results(sent[2])[0]["is_error"] is True
    assert not any("TOP SECRET" in json.dumps(body) for body in sent)


def test_edit_errors_and_locked_files_are_tool_errors(server, client_factory, worktree, tmp_path):
    (worktree / "calc.py").write_text(CALC + CALC)  # the old string now occurs twice
    server.push(
        message(tool_use("edit_file", {"path": "calc.py", "old_string": "return a + b", "new_string": "x"})),
        message(tool_use("edit_file", {"path": "calc.py", "old_string": "missing text", "new_string": "x"})),
        message(tool_use("write_file", {"path": "other.py", "content": "x = 1\n"})),
        message(tool_use("finish", {"summary": "stuck"})),
    )
    request = make_request(worktree, tmp_path, claim=lambda path: False)  # every other file is held
    result = run(AnthropicImplementer(client_factory), request)
    sent = server.message_requests
    not_unique, missing, locked = (tool_results(sent[i])[0] for i in (1, 2, 3))
    assert not_unique["is_error"] and "occurs 2 times" in not_unique["content"]
    assert missing["is_error"] and "not found" in missing["content"]
    assert locked["is_error"] and locked["content"].startswith("file_locked") and "other.py" in locked["content"]
    assert not (worktree / "other.py").exists()
    assert result.files_touched == []


def test_cost_limit_stops_the_attempt(server, client_factory, worktree, tmp_path):
    # 10,000 input tokens at $3/M = $0.03, over a $0.02 limit.
    server.push(message(tool_use("read_file", {"path": "calc.py"}), input_tokens=10_000, output_tokens=10),
                message(tool_use("finish", {"summary": "never reached"})))
    limits = AttemptLimits(max_cost_usd=0.02)
    result = run(AnthropicImplementer(client_factory), make_request(worktree, tmp_path, limits=limits))
    assert not result.ok and result.failure_type == "budget_exhausted"
    assert result.message.startswith("cost limit $0.02 reached")
    assert result.usage == Usage(input_tokens=10_000, output_tokens=10)
    assert len(server.message_requests) == 1


def test_token_and_turn_limits(server, client_factory, worktree, tmp_path):
    server.push(message(tool_use("list_files", {}), input_tokens=600, output_tokens=10))
    result = run(AnthropicImplementer(client_factory),
                 make_request(worktree, tmp_path, limits=AttemptLimits(max_tokens=500)))
    assert (result.failure_type, result.message.split(" (")[0]) == ("budget_exhausted", "token limit 500 reached")

    server.push(*(message(tool_use("list_files", {})) for _ in range(2)))
    result = run(AnthropicImplementer(client_factory),
                 make_request(worktree, tmp_path, limits=AttemptLimits(max_turns=2)))
    assert (result.failure_type, result.message) == ("agent_error", "turn limit 2 reached")
    assert result.usage == Usage(input_tokens=200, output_tokens=40)


@pytest.mark.parametrize(
    "reply, failure_type, retry_after, words",
    [
        (error(429, "Number of request tokens has exceeded your rate limit", {"retry-after": "7"}),
         "rate_limited", 7.0, "rate limit"),
        (error(529, "Overloaded"), "network_error", None, "overloaded"),
        (error(500, "Internal server error"), "network_error", None, "500"),
        (error(400, "messages.1.content: tool_use ids must be unique"), "agent_error", None, "tool_use ids must be unique"),
        (Reply(drop=True), "network_error", None, "connection"),
        (Reply(body={}, delay=3.0), "network_error", None, "timed out"),
    ],
    ids=["429", "529", "500", "400", "dropped", "timeout"],
)
def test_api_failures_are_classified_and_keep_the_usage_so_far(
    server, api_env, worktree, tmp_path, reply, failure_type, retry_after, words
):
    server.push(message(tool_use("list_files", {}), input_tokens=321, output_tokens=12), reply)
    # Request retries off: what is left after them is classified like this.
    implementer = AnthropicImplementer(lambda: make_client(timeout=0.5), retry=NO_RETRY)
    result = run(implementer, make_request(worktree, tmp_path))
    assert not result.ok
    assert result.failure_type == failure_type
    assert result.retry_after == retry_after
    assert words.lower() in result.message.lower()
    assert result.usage == Usage(input_tokens=321, output_tokens=12)
    assert SECRET_KEY not in result.message
    # No SDK retries: the request retries are ours (off here), then the core's policy.
    assert len(server.message_requests) == 2


def test_missing_credentials_is_a_clear_agent_error(monkeypatch, worktree, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    result = run(AnthropicImplementer(), make_request(worktree, tmp_path))
    assert result.failure_type == "agent_error" and "ANTHROPIC_API_KEY" in result.message


def test_attempt_timeout(server, client_factory, worktree, tmp_path):
    server.push(Reply(body=message(tool_use("finish", {"summary": "late"})), delay=2.0))
    limits = AttemptLimits(timeout_seconds=0.3)
    result = run(AnthropicImplementer(client_factory), make_request(worktree, tmp_path, limits=limits))
    assert (result.failure_type, result.message) == ("timeout", "attempt timeout 0.3s reached")


def test_a_batched_attempt_loads_the_shared_context_once_and_lists_every_task(server, client_factory, worktree,
                                                                               tmp_path):
    """[policies.batch]: one session for two tasks. The first message holds both tasks' SIS and
    each declared file once; run_checks runs both tasks' commands; a write outside the
    batch's declared files is refused (it could not be split by task)."""
    from hybrid_tui.agents.base import BatchMember

    sub = make_task()
    mul = SisTask.model_validate({
        "task_id": "mul", "title": "Add mul() to ops.py",
        "file_operations": [{"op": "create", "path": "ops.py", "content": "def mul(a, b):\n    return a * b\n"}],
        "validation": {"commands": [f"{shlex.quote(sys.executable)} -c 'import ops; assert ops.mul(2, 3) == 6'"],
                       "timeout_seconds": 60},
    })
    fixed = CALC + "\n\ndef sub(a, b):\n    return a - b\n"
    server.push(
        message(tool_use("write_file", {"path": "elsewhere.py", "content": "x = 1\n"})),
        message(tool_use("edit_file", {"path": "calc.py", "old_string": CALC, "new_string": fixed})),
        message(tool_use("write_file", {"path": "ops.py", "content": "def mul(a, b):\n    return a * b\n"})),
        message(tool_use("run_checks", {})),
        message(tool_use("finish", {"summary": "both done"})),
    )
    declared = sub.declared_files + mul.declared_files
    request = ImplementRequest(
        run_id="run-1", task=sub, attempt=1, agent_id="agent-1", model="claude-test",
        sandbox=Sandbox(worktree, declared=declared, claim=lambda path: False),
        log_path=tmp_path / "logs" / "sub-1.log", cost_of=cost_of,
        batch=(BatchMember(sub), BatchMember(mul)), shared_context_tokens=5000,
    )
    result = run(AnthropicImplementer(client_factory), request)

    assert result.ok, result.message
    assert sorted(result.files_touched) == ["calc.py", "ops.py"]
    assert not (worktree / "elsewhere.py").exists()
    first = server.message_requests[0]["messages"][0]["content"][0]["text"]
    assert "# A batch of 2 tasks" in first
    assert first.count('"task_id": "sub"') == 1 and first.count('"task_id": "mul"') == 1
    assert first.count("## calc.py") == 1  # the shared context (declared files) once
    checks = tool_results(server.message_requests[4])[0]["content"]
    checks = checks if isinstance(checks, str) else json.dumps(checks)
    assert "ops.mul" in checks and "pytest" in checks
