"""The Claude backend on the API's failure paths (issue 18), against the strict local stand-in.

Every request goes through the real SDK over HTTP to ``fakes.messages_server``, which refuses
what the API documents as invalid; the ``server`` fixture fails a test whose code sent such a
request. Sleeps are recorded instead of waited, so retry-after values are checked, not slept.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from fakes.messages_server import Reply, check_messages_request, error, message, overloaded, text, tool_use

from hybrid_tui.agents.anthropic.client import RequestRetry, make_client
from hybrid_tui.agents.anthropic.implementer import AnthropicImplementer
from hybrid_tui.agents.anthropic.planner import AnthropicPlanner, _custom_ids
from hybrid_tui.agents.anthropic.tools import TOOL_DEFINITIONS
from hybrid_tui.agents.base import AttemptLimits
from hybrid_tui.spec.models import Usage

from .conftest import cost_of
from .test_anthropic_implementer import make_request
from .test_anthropic_planner import plan_request, valid_sis


class Sleeps:
    """Records each wait instead of sleeping it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "plan-repo"
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


# ------------------------------------------------------------------ the stand-in is strict


def test_the_stand_in_refuses_what_the_api_refuses(server, client_factory):
    """Each documented rule, checked on the wire through the SDK (so the stand-in cannot
    quietly accept what the API would refuse)."""
    base = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    bad = {
        "empty content": {**base, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": []},
                                               {"role": "user", "content": "again"}]},
        "blank text": {**base, "messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]},
        "unpaired tool_use": {**base, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": "no result"}]},
        "stray tool_result": {**base, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]},
        "5 cache breakpoints": {**base, "system": [
            {"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]},
        "max_tokens over the model's limit": {**base, "model": "claude-3-5-haiku-20241022", "max_tokens": 16_000},
        "not an API id": {**base, "model": "claude-3-5-haiku"},
        "tool name": {**base, "tools": [{"name": "read file", "input_schema": {"type": "object"}}]},
        "text before tool_result": {**base, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "text", "text": "here:"},
                                         {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]},
        "duplicate tool_use id": {**base, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}},
                                              {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]},
        "tool_result twice": {**base, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                                         {"type": "tool_result", "tool_use_id": "toolu_1", "content": "y"}]}]},
        "prefill ending in whitespace": {**base, "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}]},
        "cache_control of another type": {**base, "system": [
            {"type": "text", "text": "s", "cache_control": {"type": "persistent"}}]},
        "tool_use input not an object": {**base, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": "x"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]},
    }
    server.expect_rejections = True

    async def send_all() -> list[int]:
        statuses = []
        async with client_factory() as client:
            for params in bad.values():
                try:
                    await client.messages.create(**params)
                    statuses.append(200)
                except Exception as exc:  # the SDK's APIStatusError
                    statuses.append(getattr(exc, "status_code", 0))
        return statuses

    statuses = anyio.run(send_all)
    assert dict(zip(bad, statuses)) == {**{k: 400 for k in bad}, "not an API id": 404}
    messages = [m for _, m in server.rejected]
    assert "all messages must have non-empty content except for the optional final assistant message" in messages[0]
    assert "`tool_use` ids were found without `tool_result` blocks immediately after" in messages[2]
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in messages[4]
    assert "maximum allowed number of output tokens for claude-3-5-haiku-20241022" in messages[5]
    assert "the `tool_result` blocks must come first" in messages[8]
    # A final assistant message may be empty (a prefill), and the valid base request passes.
    check_messages_request({**base, "messages": [*base["messages"], {"role": "assistant", "content": ""}]})
    check_messages_request(base)
    # Tool results first, then text, in the message after the tool_use: accepted.
    check_messages_request({**base, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                                     {"type": "text", "text": "and more"}]}]})


def test_the_stand_in_refuses_a_request_without_credentials_or_version(server):
    import json
    import urllib.error
    import urllib.request

    def post(headers: dict[str, str]) -> tuple[int, str]:
        body = {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        request = urllib.request.Request(f"{server.base_url}/v1/messages", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json", **headers})
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())["error"]["type"]
        return 200, ""

    server.expect_rejections = True
    assert post({"anthropic-version": "2023-06-01"}) == (401, "authentication_error")
    assert post({"x-api-key": "k"}) == (400, "invalid_request_error")
    assert len(server.rejected) == 2 and server.pending == 0


def test_the_request_builders_pass_every_rule(server, client_factory, worktree, tmp_path, repo):
    """Planner (first turn and repair) and implementer (a long tool loop with the rolling
    cache breakpoint) send only requests the stand-in accepts (the fixture checks)."""
    server.push(message(tool_use("submit_sis", {"tasks": "nope"})), message(tool_use("submit_sis", valid_sis())))
    assert anyio.run(AnthropicPlanner(client_factory).plan, plan_request(repo)).ok
    server.push(*(message(tool_use("list_files", {}), tool_use("read_file", {"path": "calc.py"})) for _ in range(4)),
                message(tool_use("finish", {"summary": "done"})))
    result = anyio.run(AnthropicImplementer(client_factory).implement, make_request(worktree, tmp_path))
    assert result.ok, result.message
    assert len(server.message_requests) == 7
    assert all(t["name"] for t in TOOL_DEFINITIONS)
    assert server.rejected == []


def test_batch_custom_ids_are_unique_and_within_the_api_pattern():
    ids = _custom_ids(["a.b", "a_b", "x" * 100, "ünïcode"])
    assert sorted(ids.values()) == [0, 1, 2, 3]
    assert all(len(i) <= 64 and i.replace("-", "").replace("_", "").isalnum() and i.isascii() for i in ids)


# ------------------------------------------------------------------ 3: planner repair after a refusal / empty answer


@pytest.mark.parametrize("batch", [False, True], ids=["direct", "batch"])
def test_an_empty_planner_answer_is_repaired_without_an_empty_assistant_turn(server, client_factory, repo, batch):
    server.push(message(stop_reason="end_turn", input_tokens=40, output_tokens=1),
                message(tool_use("submit_sis", valid_sis("A")), input_tokens=60, output_tokens=30))
    planner = AnthropicPlanner(client_factory, batch=batch, poll_seconds=0)
    result = anyio.run(planner.plan_many, [plan_request(repo, "A")])[0]
    assert result.ok, result.message
    assert result.usage == Usage(input_tokens=100, output_tokens=31)
    assert server.rejected == []  # the repair turn was accepted


@pytest.mark.parametrize("batch", [False, True], ids=["direct", "batch"])
def test_a_planner_refusal_is_an_agent_error_saying_so(server, client_factory, repo, batch):
    server.push(message(stop_reason="refusal", input_tokens=40, output_tokens=2))
    planner = AnthropicPlanner(client_factory, batch=batch, poll_seconds=0)
    result = anyio.run(planner.plan_many, [plan_request(repo, "A")])[0]
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert "refused" in result.message and "A" in result.message
    assert result.usage == Usage(input_tokens=40, output_tokens=2)  # billed, so reported
    assert server.pending == 0 and server.rejected == []


# ------------------------------------------------------------------ 5: batches survive transient poll errors


def test_a_batch_survives_a_529_while_polling(server, client_factory, repo):
    server.batch_polls_before_end = 2
    server.poll_faults.extend([overloaded(), error(500, "Internal server error")])
    server.push(message(tool_use("submit_sis", valid_sis("A"))), message(tool_use("submit_sis", valid_sis("B"))))
    sleeps, seen = Sleeps(), []
    planner = AnthropicPlanner(client_factory, batch=True, poll_seconds=0, sleep=sleeps, on_batch=seen.append)
    results = anyio.run(planner.plan_many, [plan_request(repo, "A"), plan_request(repo, "B")])
    assert [r.ok for r in results] == [True, True]
    assert seen == list(server.batches)  # the id was handed out as soon as the batch existed
    assert server.cancelled_batches == []


def test_an_abandoned_batch_is_cancelled_and_named_and_resume_fetches_it(server, client_factory, repo):
    server.batch_polls_before_end = 5
    server.poll_faults.extend([overloaded() for _ in range(3)])
    server.push(message(tool_use("submit_sis", valid_sis("A")), input_tokens=500, output_tokens=50))
    seen: list[str] = []
    planner = AnthropicPlanner(client_factory, batch=True, poll_seconds=0, sleep=Sleeps(), on_batch=seen.append,
                               poll_retry=RequestRetry(max_retries=2))
    result = anyio.run(planner.plan_many, [plan_request(repo, "A")])[0]
    batch_id = seen[0]
    assert (result.ok, result.failure_type) == (False, "network_error")
    assert batch_id in result.message and f"--resume {batch_id}" in result.message
    assert server.cancelled_batches == [batch_id]

    # The API finished (and billed) what it processed: resume fetches it under the same issue.
    server.batches[batch_id]["results"][0]["result"] = {
        "type": "succeeded", "message": message(tool_use("submit_sis", valid_sis("A")), input_tokens=500, output_tokens=50)}
    resumed = anyio.run(AnthropicPlanner(client_factory, batch=True, poll_seconds=0).resume_batch,
                        batch_id, [plan_request(repo, "A")])[0]
    assert resumed.ok and resumed.usage == Usage(input_tokens=500, output_tokens=50)
    assert resumed.cost_usd == pytest.approx(cost_of("claude-test", resumed.usage), abs=1e-6)
    creates = [r for r in server.requests if r.method == "POST" and r.path == "/v1/messages/batches"]
    assert len(creates) == 1  # resuming submitted nothing new


def test_a_batch_whose_planning_is_cancelled_is_cancelled_on_the_api_too(server, client_factory, repo):
    """Ctrl-C, or the run stopping, while the batch is polled: the batch is not left running
    unseen (its id was handed out for ``plan --batch --resume``)."""
    server.batch_polls_before_end = 10_000
    server.push(message(tool_use("submit_sis", valid_sis("A"))))
    seen: list[str] = []
    planner = AnthropicPlanner(client_factory, batch=True, poll_seconds=0.02, on_batch=seen.append)

    async def plan_then_give_up() -> None:
        with anyio.move_on_after(0.5):
            await planner.plan_many([plan_request(repo, "A")])
            raise AssertionError("the batch never ends")

    anyio.run(plan_then_give_up)
    assert len(seen) == 1 and server.cancelled_batches == seen


# ------------------------------------------------------------------ 7: implementer refusal / empty end_turn


@pytest.mark.parametrize(
    "reply, words",
    [(message(text("I can't help with that."), stop_reason="refusal", input_tokens=70, output_tokens=9), "refused"),
     (message(stop_reason="end_turn", input_tokens=70, output_tokens=9), "empty answer"),
     (message(text("   "), stop_reason="end_turn", input_tokens=70, output_tokens=9), "empty answer")],
    ids=["refusal", "empty", "blank"],
)
def test_an_implementer_refusal_or_empty_end_turn_is_not_a_success(server, client_factory, worktree, tmp_path, reply, words):
    server.push(message(tool_use("list_files", {}), input_tokens=30, output_tokens=3), reply)
    result = anyio.run(AnthropicImplementer(client_factory).implement, make_request(worktree, tmp_path))
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert words in result.message
    assert result.usage == Usage(input_tokens=100, output_tokens=12)


@pytest.mark.parametrize("cut", [message(stop_reason="max_tokens", input_tokens=70, output_tokens=9),
                                 message(text(" \n"), stop_reason="max_tokens", input_tokens=70, output_tokens=9)],
                         ids=["empty", "blank"])
def test_an_implementer_answer_cut_off_empty_is_continued_without_an_empty_assistant_turn(
        server, client_factory, worktree, tmp_path, cut):
    """Cut off at max_tokens before saying anything: the loop asks it to go on, and the
    next request (after a tool_result turn) carries no empty assistant message."""
    server.push(message(tool_use("list_files", {}), input_tokens=30, output_tokens=3), cut,
                message(tool_use("finish", {"summary": "done"}), input_tokens=100, output_tokens=5))
    result = anyio.run(AnthropicImplementer(client_factory).implement, make_request(worktree, tmp_path))
    assert result.ok, result.message
    assert result.usage == Usage(input_tokens=200, output_tokens=17)
    last = server.message_requests[-1]["messages"]
    assert all(msg["content"] for msg in last) and server.rejected == []


# ------------------------------------------------------------------ 8: retries at the request level


def test_a_transient_error_mid_attempt_retries_the_request_not_the_attempt(server, client_factory, worktree, tmp_path):
    turns = [message(tool_use("list_files", {}), input_tokens=1000, output_tokens=50) for _ in range(4)]
    server.push(*turns, error(429, "rate limited", {"retry-after": "7"}), overloaded(), Reply(drop=True),
                message(tool_use("finish", {"summary": "done"}), input_tokens=1000, output_tokens=50))
    sleeps = Sleeps()
    implementer = AnthropicImplementer(client_factory, sleep=sleeps)
    result = anyio.run(implementer.implement, make_request(worktree, tmp_path))
    assert result.ok, result.message
    assert result.usage == Usage(input_tokens=5000, output_tokens=250)  # five answered turns, each once
    assert result.cost_usd == pytest.approx(cost_of("claude-test", result.usage), abs=1e-6)
    bodies = server.message_requests
    assert len(bodies) == 8 and bodies[4] == bodies[5] == bodies[6] == bodies[7]  # turn 5 re-sent as it was
    assert sleeps.waits[0] == 7.0  # the server's retry-after
    log = (tmp_path / "logs" / "sub-1.log").read_text()
    assert "retry 1 of the request in 7.0s" in log


def test_request_retries_stop_at_the_attempts_deadline(server, client_factory, worktree, tmp_path):
    server.push(error(429, "rate limited", {"retry-after": "120"}))
    limits = AttemptLimits(timeout_seconds=60)
    sleeps = Sleeps()
    result = anyio.run(AnthropicImplementer(client_factory, sleep=sleeps).implement,
                       make_request(worktree, tmp_path, limits=limits))
    # Waiting 120 s would pass the 60 s deadline: the core gets the failure and its retry-after.
    assert (result.failure_type, result.retry_after) == ("rate_limited", 120.0)
    assert sleeps.waits == [] and len(server.message_requests) == 1


def test_the_planner_retries_requests_too(server, client_factory, repo):
    server.push(overloaded(), error(503, "unavailable"), message(tool_use("submit_sis", valid_sis())))
    sleeps = Sleeps()
    result = anyio.run(AnthropicPlanner(client_factory, sleep=sleeps).plan, plan_request(repo))
    assert result.ok and len(server.message_requests) == 3 and len(sleeps.waits) == 2


def test_make_client_leaves_retrying_to_us(api_env):
    assert make_client().max_retries == 0
