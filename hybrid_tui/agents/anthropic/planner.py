"""The ``anthropic`` L2 planner: Claude writes a SIS through a forced ``submit_sis`` tool.

Room: agents. Talks to the Messages API (or the Message Batches API with ``batch=True``)
through the SDK; reads nothing but the request (and, when the caller gave no file tree, the
repository's file list from ``workspace.tree`` and the excerpts of ``context``: no git of
its own). The submitted SIS is validated with the
same rules as ``hybrid-tui validate``; an invalid one gets exactly one repair turn with
the exact problems (an ``is_error`` tool result); still invalid is an ``agent_error``
whose message lists every problem, one per line.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import anyio

from hybrid_tui.spec.loader import sis_json_schema, validate_sis_document
from hybrid_tui.spec.models import Sis, Usage
from hybrid_tui.workspace.tree import repository_files
from hybrid_tui.agents.base import PlanRequest, PlanResult
from hybrid_tui.agents.anthropic import prompts
from hybrid_tui.agents.anthropic.context import relevant_excerpts
from hybrid_tui.agents.anthropic.client import (
    API_ERRORS,
    EPHEMERAL,
    ApiFailure,
    ClientFactory,
    RateLimiters,
    add_usage,
    classify_error,
    content_to_params,
    create_message,
    default_client_factory,
    redact,
    usage_from_response,
)

TOOL_NAME = "submit_sis"
MAX_ROUNDS = 2  # the first answer and one repair


def sis_schema() -> dict[str, Any]:
    return sis_json_schema()


def validate_sis(data: Any, request: PlanRequest) -> tuple[Sis | None, list[str]]:
    """Validate like ``hybrid-tui validate``; problems print as ``FILE:LOCATION: message``."""
    source = f"sis/{request.issue_id}.json"
    if not isinstance(data, dict):
        return None, [f"{source}:$: the {TOOL_NAME} input must be a JSON object"]
    # The issue is given, not planned: pin it so the model cannot drift from it.
    data = {**data, "issue": {"id": request.issue_id, "title": request.title, "body": request.body}}
    sis, problems = validate_sis_document(
        data, source=source, repo_root=request.repo_root, known_task_ids=request.known_task_ids
    )
    return (sis if not problems else None), [str(p) for p in problems]


@dataclass
class _Conversation:
    """One issue's planning state across rounds (direct or batched)."""

    request: PlanRequest
    messages: list[dict[str, Any]]
    usage: Usage = field(default_factory=Usage)
    problems: list[str] = field(default_factory=list)
    result: PlanResult | None = None

    def add_response(self, message: Any) -> Sis | None:
        """Record one model answer; return the SIS if valid, else queue the repair turn."""
        self.usage = add_usage(self.usage, usage_from_response(getattr(message, "usage", None)))
        call = next((b for b in message.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
        if call is None:
            self.problems = [f"sis/{self.request.issue_id}.json:$: the model did not call {TOOL_NAME}"]
        elif message.stop_reason == "max_tokens":
            self.problems = [
                f"sis/{self.request.issue_id}.json:$: the SIS was cut off at the output token limit; "
                "submit a shorter SIS (fewer tasks, 'intent' operations instead of full file contents)"
            ]
        else:
            sis, self.problems = validate_sis(call.input, self.request)
            if sis is not None:
                return sis
        self.messages.append({"role": "assistant", "content": content_to_params(message.content)})
        repair = prompts.planner_repair_message(self.problems)
        if call is not None:
            self.messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call.id, "content": repair, "is_error": True}],
                }
            )
        else:
            self.messages.append({"role": "user", "content": repair})
        return None

    def cost(self) -> float:
        return self.request.cost_of(self.request.model, self.usage)

    def finish_ok(self, sis: Sis) -> PlanResult:
        self.result = PlanResult(ok=True, model=self.request.model, sis=sis, usage=self.usage, cost_usd=self._safe_cost())
        return self.result

    def finish_failed(self, failure_type: str, message: str, retry_after: float | None = None) -> PlanResult:
        self.result = PlanResult(
            ok=False,
            model=self.request.model,
            usage=self.usage,
            cost_usd=self._safe_cost(),
            failure_type=failure_type,
            message=redact(message),
            retry_after=retry_after,
        )
        return self.result

    def _safe_cost(self) -> float:
        try:
            return self.cost()
        except Exception:  # unknown model: usage is still reported
            return 0.0


class AnthropicPlanner:
    name = "anthropic"

    def __init__(
        self,
        client_factory: ClientFactory | None = None,
        *,
        max_tokens: int = 16_000,
        batch: bool = False,
        limiters: RateLimiters | None = None,
        poll_seconds: float = 30.0,
        concurrency: int = 4,
    ):
        self.client_factory = client_factory or default_client_factory()
        self.max_tokens = max_tokens
        self.batch = batch
        self.limiters = limiters
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency

    # ------------------------------------------------------------------ public
    async def plan(self, request: PlanRequest) -> PlanResult:
        if self.batch:
            return (await self.plan_many([request]))[0]
        return await self._plan_direct(request)

    async def plan_many(self, requests: Sequence[PlanRequest]) -> list[PlanResult]:
        """Plan every request: in parallel (``concurrency`` at a time), or as Message Batches."""
        if self.batch:
            return await self._plan_batched(list(requests))
        results: list[PlanResult | None] = [None] * len(requests)
        limiter = anyio.CapacityLimiter(max(1, self.concurrency))

        async def one(index: int, request: PlanRequest) -> None:
            async with limiter:
                results[index] = await self._plan_direct(request)

        async with anyio.create_task_group() as group:
            for index, request in enumerate(requests):
                group.start_soon(one, index, request)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ request shape
    def _params(self, conversation: _Conversation) -> dict[str, Any]:
        request = conversation.request
        tool = {
            "name": TOOL_NAME,
            "description": "Submit the Structured Implementation Spec (SIS) for the issue.",
            "input_schema": sis_schema(),
            "cache_control": EPHEMERAL,
        }
        return {
            "model": request.model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": prompts.PLANNER_SYSTEM, "cache_control": EPHEMERAL}],
            "tools": [tool],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
            "messages": list(conversation.messages),
        }

    @staticmethod
    def _conversation(request: PlanRequest) -> _Conversation:
        text = prompts.planner_user_message(
            request.issue_id, request.title, request.body, request.file_tree, request.excerpts,
            known_task_ids=sorted(request.known_task_ids),
        )
        return _Conversation(request=request, messages=[{"role": "user", "content": text}])

    # ------------------------------------------------------------------ direct
    async def _plan_direct(self, request: PlanRequest) -> PlanResult:
        request = await with_context(request)
        conversation = self._conversation(request)
        try:
            client = self.client_factory()
        except API_ERRORS as exc:
            failure = classify_error(exc)
            return conversation.finish_failed(failure.failure_type, failure.message, failure.retry_after)
        limiter = self.limiters.for_model(request.model) if self.limiters else None
        async with client:
            for _round in range(MAX_ROUNDS):
                try:
                    message = await create_message(client, limiter, **self._params(conversation))
                except API_ERRORS as exc:
                    failure = classify_error(exc)
                    return conversation.finish_failed(failure.failure_type, failure.message, failure.retry_after)
                sis = conversation.add_response(message)
                if sis is not None:
                    return conversation.finish_ok(sis)
        return conversation.finish_failed("agent_error", "\n".join(conversation.problems))

    # ------------------------------------------------------------------ batches
    async def _plan_batched(self, requests: list[PlanRequest]) -> list[PlanResult]:
        requests = [await with_context(r) for r in requests]
        conversations = [self._conversation(r) for r in requests]
        try:
            client = self.client_factory()
        except API_ERRORS as exc:
            failure = classify_error(exc)
            return [c.finish_failed(failure.failure_type, failure.message, failure.retry_after) for c in conversations]
        async with client:
            pending = conversations
            for _round in range(MAX_ROUNDS):
                if not pending:
                    break
                try:
                    outcomes = await self._run_batch(client, pending)
                except API_ERRORS as exc:
                    failure = classify_error(exc)
                    for conversation in pending:
                        conversation.finish_failed(failure.failure_type, failure.message, failure.retry_after)
                    pending = []
                    break
                still_invalid = []
                for conversation, outcome in zip(pending, outcomes):
                    if isinstance(outcome, ApiFailure):
                        conversation.finish_failed(outcome.failure_type, outcome.message, outcome.retry_after)
                        continue
                    sis = conversation.add_response(outcome)
                    if sis is not None:
                        conversation.finish_ok(sis)
                    else:
                        still_invalid.append(conversation)
                pending = still_invalid
            for conversation in pending:
                conversation.finish_failed("agent_error", "\n".join(conversation.problems))
        return [c.result for c in conversations if c.result is not None]

    async def _run_batch(self, client: Any, conversations: list[_Conversation]) -> list[Any]:
        """Submit one batch, poll until it ends, return per conversation a message or an ApiFailure."""
        ids = {f"plan-{i}-{_slug(c.request.issue_id)}"[:64]: i for i, c in enumerate(conversations)}
        batch = await client.messages.batches.create(
            requests=[{"custom_id": cid, "params": self._params(conversations[i])} for cid, i in ids.items()]
        )
        while batch.processing_status != "ended":
            await anyio.sleep(self.poll_seconds)
            batch = await client.messages.batches.retrieve(batch.id)
        outcomes: list[Any] = [ApiFailure("agent_error", "no result in the batch for this issue")] * len(conversations)
        async for item in await client.messages.batches.results(batch.id):
            index = ids.get(item.custom_id)
            if index is None:
                continue
            result = item.result
            if result.type == "succeeded":
                outcomes[index] = result.message
            elif result.type == "errored":
                outcomes[index] = _batch_error(result.error)
            else:  # canceled / expired: nothing was processed, trying again later may work
                outcomes[index] = ApiFailure("network_error", f"batch request {result.type}")
        return outcomes


async def with_context(request: PlanRequest) -> PlanRequest:
    """Fill the file tree and excerpts from the repository when the caller did not."""
    if request.file_tree or not request.repo_root:
        return request

    def gather() -> PlanRequest:
        files = repository_files(request.repo_root)
        excerpts = request.excerpts or relevant_excerpts(request.repo_root, files, f"{request.title}\n{request.body}")
        return dataclasses.replace(request, file_tree=files, excerpts=excerpts)

    return await anyio.to_thread.run_sync(gather)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text) or "issue"


def _batch_error(error_response: Any) -> ApiFailure:
    error = getattr(error_response, "error", None)
    kind = getattr(error, "type", None) or "api_error"
    message = getattr(error, "message", None) or kind
    if kind == "rate_limit_error":
        return ApiFailure("rate_limited", f"rate limited in the batch: {message}")
    if kind in ("overloaded_error", "api_error", "timeout_error"):
        return ApiFailure("network_error", f"batch request failed ({kind}): {message}")
    return ApiFailure("agent_error", f"batch request rejected ({kind}): {message}")
