"""The ``anthropic`` L2 planner: Claude writes a SIS through a forced ``submit_sis`` tool.

Room: agents. Talks to the Messages API (or the Message Batches API with ``batch=True``)
through the SDK; reads nothing but the request (and, when the caller gave no file tree, the
repository's file list from ``workspace.tree`` and the excerpts of ``context``: no git of
its own). The submitted SIS is validated with the
same rules as ``hybrid-tui validate``; an invalid one gets exactly one repair turn with
the exact problems (an ``is_error`` tool result); still invalid is an ``agent_error``
whose message lists every problem, one per line. A refusal (``stop_reason`` "refusal") is
an ``agent_error`` saying so; an empty answer gets the repair turn without echoing the
empty assistant message (the API refuses empty content before the final message).

Transient API errors are retried per request (:func:`~.client.call_with_retries`). A
Message Batch's id is handed to ``on_batch`` as soon as it exists; polling survives
transient errors; a batch given up (errors left after the retries, a cancel, Ctrl-C) is
cancelled and every failure names its id, and :meth:`AnthropicPlanner.resume_batch`
fetches its results later (``hybrid-tui plan --batch --resume ID``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

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
    BATCH_POLL_RETRY,
    DEFAULT_RETRY,
    RequestRetry,
    add_usage,
    call_with_retries,
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
    refused: str = ""  # why the model refused: final, no repair turn
    result: PlanResult | None = None

    def add_response(self, message: Any) -> Sis | None:
        """Record one model answer; return the SIS if valid, else queue the repair turn
        (or set ``refused``, which ends the conversation)."""
        self.usage = add_usage(self.usage, usage_from_response(getattr(message, "usage", None)))
        if self.request.report_spend is not None:  # billed now, whatever ends the planning step
            self.request.report_spend(self.usage, self._safe_cost())
        if message.stop_reason == "refusal":
            said = " ".join(b.text for b in message.content if b.type == "text").strip()
            self.refused = (f"the model refused to plan issue {self.request.issue_id} (stop_reason refusal)"
                            + (f": {said[:300]}" if said else ""))
            return None
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
        echoed = content_to_params(message.content)
        if echoed:  # an empty answer is not sent back: the API refuses an empty assistant turn
            self.messages.append({"role": "assistant", "content": echoed})
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

    def finish_unplanned(self) -> PlanResult:
        """The end of a conversation that produced no valid SIS."""
        return self.finish_failed("agent_error", self.refused or "\n".join(self.problems))

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
    uses_recorded_sis = False  # it writes its own SIS: an issue with a reviewed one is not given to it

    def __init__(
        self,
        client_factory: ClientFactory | None = None,
        *,
        max_tokens: int = 8000,
        batch: bool = False,
        limiters: RateLimiters | None = None,
        poll_seconds: float = 30.0,
        concurrency: int = 4,
        retry: RequestRetry = DEFAULT_RETRY,
        poll_retry: RequestRetry = BATCH_POLL_RETRY,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        on_batch: Callable[[str], None] | None = None,
    ):
        self.client_factory = client_factory or default_client_factory()
        self.max_tokens = max_tokens
        self.batch = batch
        self.limiters = limiters
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.retry = retry
        self.poll_retry = poll_retry
        self._sleep = sleep
        self.on_batch = on_batch  # told each batch id as soon as it exists (to print it)

    # ------------------------------------------------------------------ public
    async def plan(self, request: PlanRequest) -> PlanResult:
        if self.batch:
            return (await self.plan_many([request]))[0]
        return await self._plan_direct(request)

    async def resume_batch(self, batch_id: str, requests: Sequence[PlanRequest]) -> list[PlanResult]:
        """Fetch the results of a batch submitted earlier (polling until it ends) as the
        answers to ``requests``' first turn; invalid SIS get their repair batch as usual.
        Raises :class:`UnknownBatch` when the API refuses the id (a typo, another account's
        batch): nothing is cancelled or planned."""
        try:
            async with self.client_factory() as client:
                await self._call(self.poll_retry, lambda: client.messages.batches.retrieve(batch_id))
        except API_ERRORS as exc:
            failure = classify_error(exc)
            if failure.failure_type not in ("network_error", "rate_limited"):
                raise UnknownBatch(batch_id, failure.message) from None
        return await self._plan_batched(list(requests), resume_id=batch_id)

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
                    message = await create_message(client, limiter, retry=self.retry, sleep=self._sleep,
                                                   **self._params(conversation))
                except API_ERRORS as exc:
                    failure = classify_error(exc)
                    return conversation.finish_failed(failure.failure_type, failure.message, failure.retry_after)
                sis = conversation.add_response(message)
                if sis is not None:
                    return conversation.finish_ok(sis)
                if conversation.refused:
                    break
        return conversation.finish_unplanned()

    # ------------------------------------------------------------------ batches
    async def _plan_batched(self, requests: list[PlanRequest], resume_id: str | None = None) -> list[PlanResult]:
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
                    outcomes = await self._run_batch(client, pending, resume_id if _round == 0 else None)
                except BatchAbandoned as abandoned:
                    for conversation in pending:
                        conversation.finish_failed(abandoned.failure.failure_type, str(abandoned),
                                                   abandoned.failure.retry_after)
                    pending = []
                    break
                except API_ERRORS as exc:  # the batch could not be created: nothing to cancel
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
                    elif conversation.refused:
                        conversation.finish_unplanned()
                    else:
                        still_invalid.append(conversation)
                pending = still_invalid
            for conversation in pending:
                conversation.finish_unplanned()
        return [c.result for c in conversations if c.result is not None]

    async def _call(self, retry: RequestRetry, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call_with_retries(call, retry=retry, sleep=self._sleep)

    async def _run_batch(self, client: Any, conversations: list[_Conversation], batch_id: str | None = None) -> list[Any]:
        """Submit one batch (or take ``batch_id``, submitted earlier), poll until it ends,
        return per conversation a message or an ApiFailure. Raises :class:`BatchAbandoned`
        (after cancelling the batch) when it cannot be followed to its end."""
        ids = _custom_ids([c.request.issue_id for c in conversations])
        if batch_id is None:
            batch = await self._call(self.retry, lambda: client.messages.batches.create(
                requests=[{"custom_id": cid, "params": self._params(conversations[i])} for cid, i in ids.items()]
            ))
            batch_id = batch.id
            status = batch.processing_status
        else:
            status = "unknown"
        if self.on_batch is not None:
            self.on_batch(batch_id)
        try:
            while status != "ended":
                if status != "unknown":
                    await self._sleep(self.poll_seconds)
                batch = await self._call(self.poll_retry, lambda: client.messages.batches.retrieve(batch_id))
                status = batch.processing_status
            decoder = await self._call(self.poll_retry, lambda: client.messages.batches.results(batch_id))
            items = [item async for item in decoder]
        except API_ERRORS as exc:
            await _cancel_quietly(client, batch_id)
            raise BatchAbandoned(batch_id, classify_error(exc)) from None
        except BaseException:  # cancelled (Ctrl-C, the run stopping): do not leave it running unseen
            await _cancel_quietly(client, batch_id)
            raise
        outcomes: list[Any] = [ApiFailure("agent_error", f"no result in batch {batch_id} for this issue")] * len(conversations)
        for item in items:
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


class UnknownBatch(Exception):
    """``resume_batch`` was given an id the API does not know (or refuses)."""

    def __init__(self, batch_id: str, message: str):
        self.batch_id = batch_id
        super().__init__(f"--resume {batch_id}: the API has no such Message Batch for this key ({message})")


class BatchAbandoned(Exception):
    """A batch that could not be followed to its end; it was cancelled (what the API already
    processed is billed and stays fetchable with ``plan --batch --resume ID``)."""

    def __init__(self, batch_id: str, failure: ApiFailure):
        self.batch_id = batch_id
        self.failure = failure
        super().__init__(
            f"Message Batch {batch_id} abandoned after {failure.failure_type}: {failure.message}; it was cancelled - "
            f"fetch what it finished with `hybrid-tui plan MISSION --batch --resume {batch_id}`"
        )


async def _cancel_quietly(client: Any, batch_id: str) -> None:
    """Cancel a batch we stop following, even while being cancelled ourselves (best effort)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
        try:
            await client.messages.batches.cancel(batch_id)
        except API_ERRORS:
            pass


def _custom_ids(issue_ids: list[str]) -> dict[str, int]:
    """custom_id -> index: stable per issue (so a resumed batch maps back), unique, and
    within the API's ``^[a-zA-Z0-9_-]{1,64}$``."""
    ids: dict[str, int] = {}
    for index, issue_id in enumerate(issue_ids):
        base = f"plan-{_slug(issue_id)}"[:56]
        custom_id, n = base, 1
        while custom_id in ids:
            n += 1
            custom_id = f"{base}-{n}"
        ids[custom_id] = index
    return ids


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
