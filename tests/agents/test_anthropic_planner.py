"""The Claude planner against a scripted Messages API server, through the real SDK over HTTP."""

from __future__ import annotations

import copy
from pathlib import Path

import anyio
import pytest

from fakes.messages_server import error, message, text, tool_use

from hybrid_tui.agents.anthropic.client import NO_RETRY
from hybrid_tui.agents.anthropic.planner import AnthropicPlanner
from hybrid_tui.agents.base import PlanRequest
from hybrid_tui.spec.loader import sis_json_schema
from hybrid_tui.spec.models import Usage

from .conftest import SECRET_KEY, cost_of


def valid_sis(issue_id: str = "001-sub") -> dict:
    return {
        "sis_version": "1.0",
        "issue": {"id": issue_id, "title": "Add subtraction", "body": ""},
        "tasks": [
            {
                "task_id": f"{issue_id}-1",
                "title": "Add sub() to calc.py",
                "priority": "HIGH",
                "file_operations": [{"op": "intent", "path": "calc.py", "intent": "add sub(a, b)"}],
                "validation": {"commands": ["python -c 'import calc; assert calc.sub(3, 1) == 2'"]},
            }
        ],
    }


def invalid_sis(issue_id: str = "001-sub") -> dict:
    sis = valid_sis(issue_id)
    sis["tasks"][0]["priority"] = "URGENT"  # not a priority
    sis["tasks"][0]["estimated_duration_minutes"] = -5  # negative
    return sis


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def plan_request(repo: Path, issue_id: str = "001-sub") -> PlanRequest:
    return PlanRequest(
        run_id="run-1",
        issue_id=issue_id,
        title="Add subtraction",
        body="calc needs sub().",
        repo_root=repo,
        model="claude-test",
        cost_of=cost_of,
        file_tree=["calc.py"],
        excerpts={"calc.py": (repo / "calc.py").read_text()},
    )


def test_invalid_sis_gets_one_repair_turn_with_the_exact_errors(server, client_factory, repo):
    server.push(
        message(tool_use("submit_sis", invalid_sis(), id="toolu_first"), input_tokens=1200, output_tokens=300,
                cache_write=900),
        message(tool_use("submit_sis", valid_sis()), input_tokens=1500, output_tokens=250, cache_read=900),
    )
    result = anyio.run(AnthropicPlanner(client_factory).plan, plan_request(repo))

    assert result.ok, result.message
    assert [t.task_id for t in result.sis.tasks] == ["001-sub-1"]
    assert result.sis.issue.id == "001-sub" and result.sis.issue.body == "calc needs sub()."
    # Usage of both responses, summed exactly, and priced with the given cost function.
    expected = Usage(input_tokens=2700, output_tokens=550, cache_read_tokens=900, cache_write_tokens=900)
    assert result.usage == expected
    assert result.cost_usd == pytest.approx(cost_of("claude-test", expected))

    first, repair = server.message_requests
    assert first["tool_choice"] == {"type": "tool", "name": "submit_sis"}
    assert first["tools"][0]["name"] == "submit_sis"
    assert first["tools"][0]["input_schema"] == sis_json_schema()
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "calc.py" in first["messages"][0]["content"] and "calc needs sub()" in first["messages"][0]["content"]
    # The repair turn: the model's own call, then an is_error tool_result naming every problem.
    assert repair["messages"][1]["content"][0]["id"] == "toolu_first"
    result_block = repair["messages"][2]["content"][0]
    assert result_block["type"] == "tool_result" and result_block["tool_use_id"] == "toolu_first"
    assert result_block["is_error"] is True
    assert "sis/001-sub.json:tasks[0].priority" in result_block["content"]
    assert "sis/001-sub.json:tasks[0].estimated_duration_minutes" in result_block["content"]


def test_still_invalid_after_repair_is_an_agent_error_listing_the_problems(server, client_factory, repo):
    server.push(
        message(tool_use("submit_sis", invalid_sis())),
        message(tool_use("submit_sis", invalid_sis()), input_tokens=50, output_tokens=7),
    )
    result = anyio.run(AnthropicPlanner(client_factory).plan, plan_request(repo))

    assert not result.ok and result.failure_type == "agent_error"
    lines = result.message.splitlines()
    assert any(line.startswith("sis/001-sub.json:tasks[0].priority:") for line in lines)
    assert any(line.startswith("sis/001-sub.json:tasks[0].estimated_duration_minutes:") for line in lines)
    assert len(server.message_requests) == 2  # one repair, no more
    assert result.usage == Usage(input_tokens=150, output_tokens=27)


def test_a_rate_limited_planner_reports_the_servers_retry_after(server, client_factory, repo):
    server.push(error(429, "Number of request tokens has exceeded your rate limit", {"retry-after": "7"}))
    # Request retries off: the failure left after them carries the server's retry-after.
    result = anyio.run(AnthropicPlanner(client_factory, retry=NO_RETRY).plan, plan_request(repo))

    assert not result.ok and result.failure_type == "rate_limited"
    assert result.retry_after == 7.0


def test_an_answer_without_the_tool_call_is_repaired_too(server, client_factory, repo):
    server.push(message(text("I think we should add sub()."), stop_reason="end_turn"),
                message(tool_use("submit_sis", valid_sis())))
    result = anyio.run(AnthropicPlanner(client_factory).plan, plan_request(repo))
    assert result.ok
    repair = server.message_requests[1]["messages"][-1]
    assert repair["role"] == "user" and "did not call submit_sis" in repair["content"]


def test_batch_planning_submits_every_issue_and_repairs_in_a_second_batch(server, client_factory, repo):
    # Batch 1: issue A valid, issue B invalid. Batch 2: B repaired.
    server.push(
        message(tool_use("submit_sis", valid_sis("A")), input_tokens=1000, output_tokens=100),
        message(tool_use("submit_sis", invalid_sis("B")), input_tokens=1000, output_tokens=100),
        message(tool_use("submit_sis", valid_sis("B")), input_tokens=1300, output_tokens=120),
    )
    planner = AnthropicPlanner(client_factory, batch=True, poll_seconds=0)
    results = anyio.run(planner.plan_many, [plan_request(repo, "A"), plan_request(repo, "B")])

    assert [r.ok for r in results] == [True, True]
    assert [r.sis.issue.id for r in results] == ["A", "B"]
    assert results[0].usage == Usage(input_tokens=1000, output_tokens=100)
    assert results[1].usage == Usage(input_tokens=2300, output_tokens=220)
    creates = [r.body for r in server.requests if r.method == "POST" and r.path == "/v1/messages/batches"]
    assert [len(c["requests"]) for c in creates] == [2, 1]
    assert creates[0]["requests"][0]["params"]["tool_choice"] == {"type": "tool", "name": "submit_sis"}
    repaired = creates[1]["requests"][0]["params"]["messages"][-1]["content"][0]
    assert repaired["is_error"] is True and "tasks[0].priority" in repaired["content"]
    # The batch was polled until it ended, then its results fetched.
    gets = [r.path for r in server.requests if r.method == "GET"]
    assert any(p.endswith("/results") for p in gets)
    assert not server.message_requests  # nothing went through the synchronous endpoint


def test_batch_errored_result_is_classified(server, client_factory, repo):
    from fakes.messages_server import error

    server.push(error(529, "Overloaded"), message(tool_use("submit_sis", valid_sis("B"))))
    planner = AnthropicPlanner(client_factory, batch=True, poll_seconds=0)
    results = anyio.run(planner.plan_many, [plan_request(repo, "A"), plan_request(repo, "B")])
    assert results[0].failure_type == "network_error" and "Overloaded" in results[0].message
    assert results[1].ok


def test_parallel_planning_keeps_request_order(server, client_factory, repo):
    server.push(*(message(tool_use("submit_sis", valid_sis(f"I{n}"))) for n in range(3)))
    # Replies are consumed in arrival order; each reply carries its own issue id which the
    # planner pins to the request's issue, so every result must still be valid.
    planner = AnthropicPlanner(client_factory, concurrency=3)
    results = anyio.run(planner.plan_many, [plan_request(repo, f"I{n}") for n in range(3)])
    assert [r.ok for r in results] == [True, True, True]
    assert [r.sis.issue.id for r in results] == ["I0", "I1", "I2"]


def test_key_never_in_result(server, client_factory, repo):
    bad = copy.deepcopy(valid_sis())
    bad["tasks"][0]["dependencies"] = ["nope"]  # a graph error: the document parses, the DAG does not
    server.push(message(tool_use("submit_sis", bad)), message(tool_use("submit_sis", bad)))
    result = anyio.run(AnthropicPlanner(client_factory).plan, plan_request(repo))
    assert not result.ok and "unknown task 'nope'" in result.message
    assert SECRET_KEY not in repr(result)
    # ... while it was really sent to the server as the credential.
    assert any(SECRET_KEY in value for value in server.requests[0].headers.values())


def test_tasks_of_other_issues_may_be_dependencies(server, client_factory, repo):
    depending = valid_sis()
    depending["tasks"][0]["dependencies"] = ["000-setup-1"]
    server.push(message(tool_use("submit_sis", depending)))
    request = plan_request(repo)
    request.known_task_ids = frozenset({"000-setup-1"})
    result = anyio.run(AnthropicPlanner(client_factory).plan, request)
    assert result.ok, result.message
    assert result.sis.tasks[0].dependencies == ["000-setup-1"]
    assert "- 000-setup-1" in server.message_requests[0]["messages"][0]["content"]
