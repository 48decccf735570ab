"""The ``anthropic`` L3 implementer: a Claude tool loop inside the task's worktree.

Room: agents. Talks to the Messages API through the SDK and to files only through the
request's sandbox; never touches the store or git. Writes a readable transcript of every
turn to the attempt's log (tool results truncated; never credentials or headers).

Limits per attempt (``request.limits``): turns -> ``agent_error`` "turn limit N reached";
tokens and dollars -> ``budget_exhausted``; wall time -> ``timeout``. A transient API
failure is retried at the request level (``retry``, within the attempt's deadline: the
turns already answered are kept); what is left is classified by
:func:`~.client.classify_error` (network_error / rate_limited / agent_error). A refusal
(``stop_reason`` "refusal") or an empty end of turn is an ``agent_error`` saying so, never
a success. After every turn the spend so far goes to ``request.report_spend``, so a
timeout or a cancel from outside still records what the API billed.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio

from hybrid_tui.spec.models import Usage
from hybrid_tui.agents.base import ImplementRequest, ImplementResult, combined_task
from hybrid_tui.agents.anthropic import prompts
from hybrid_tui.agents.anthropic.client import (
    API_ERRORS,
    EPHEMERAL,
    ApiFailure,
    ClientFactory,
    RateLimiters,
    DEFAULT_RETRY,
    RequestRetry,
    add_usage,
    classify_error,
    content_to_params,
    create_message,
    default_client_factory,
    usage_from_response,
)
from hybrid_tui.agents.anthropic.tools import TOOL_DEFINITIONS, ToolRunner
from hybrid_tui.vocabulary import redact

LOG_RESULT_CHARS = 2000
MAX_DECLARED_EXCERPT_CHARS = 20_000


class AttemptLog:
    """Appends a readable transcript to the attempt log; every line passes through ``redact``."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        if not self.path:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(redact(text.rstrip("\n")) + "\n")


def _clip(text: str, limit: int = LOG_RESULT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


def _total_tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens


class _Progress:
    """What the attempt has spent so far; survives a timeout cancelling the loop."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.cost = 0.0
        self.turns = 0


class AnthropicImplementer:
    name = "anthropic"

    def __init__(
        self,
        client_factory: ClientFactory | None = None,
        *,
        limiters: RateLimiters | None = None,
        max_tokens: int = 8000,
        retry: RequestRetry = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ):
        self.client_factory = client_factory or default_client_factory()
        self.limiters = limiters
        self.max_tokens = max_tokens
        self.retry = retry
        self._sleep = sleep

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        started = time.monotonic()
        log = AttemptLog(request.log_path)
        progress = _Progress()
        log.write(
            f"== anthropic implementer · task {request.task.task_id} · attempt {request.attempt}"
            f" · model {request.model} · agent {request.agent_id}"
        )
        with anyio.move_on_after(request.limits.timeout_seconds) as scope:
            result = await self._run(request, log, progress)
        if scope.cancelled_caught:
            result = self._failure(
                request, progress, "timeout", f"attempt timeout {request.limits.timeout_seconds:g}s reached"
            )
        result.duration_seconds = time.monotonic() - started
        result.files_touched = sorted(getattr(request.sandbox, "touched", ()) or ())
        log.write(
            f"== end: {'ok' if result.ok else result.failure_type} · {result.message or result.summary}"
            f" · usage {result.usage.model_dump()} · cost ${result.cost_usd:.6f}"
        )
        return result

    # ------------------------------------------------------------------ the loop
    async def _run(self, request: ImplementRequest, log: AttemptLog, progress: _Progress) -> ImplementResult:
        limits = request.limits
        if request.sandbox is None:
            return self._failure(
                request, progress, "agent_error", "the anthropic implementer needs a git worktree (not available with --no-git)"
            )
        try:
            client = self.client_factory()
        except API_ERRORS as exc:
            failure = classify_error(exc)
            return self._failure(request, progress, failure.failure_type, failure.message)
        limiter = self.limiters.for_model(request.model) if self.limiters else None
        runner = ToolRunner(
            request.sandbox, combined_task(request), check_log=request.log_path, memory_cap_mb=request.memory_cap_mb,
            environment=request.environment
        )
        system = [{"type": "text", "text": prompts.IMPLEMENTER_SYSTEM, "cache_control": EPHEMERAL}]
        tools = copy.deepcopy(TOOL_DEFINITIONS)
        tools[-1]["cache_control"] = EPHEMERAL
        excerpts = await anyio.to_thread.run_sync(self._declared_excerpts, request)
        first: list[dict[str, Any]] = [
            {"type": "text", "text": prompts.request_block(request.task, [m.task for m in request.batch], excerpts), "cache_control": EPHEMERAL}
        ]
        if request.feedback:
            first.append({"type": "text", "text": prompts.feedback_block(request.feedback, request.attempt)})
        messages: list[dict[str, Any]] = [{"role": "user", "content": first}]

        deadline = time.monotonic() + limits.timeout_seconds

        def log_retry(failure: ApiFailure, wait: float, retry: int) -> None:
            log.write(f"-- turn {progress.turns + 1}: {failure.failure_type}: {failure.message}; "
                      f"retry {retry} of the request in {wait:.1f}s")

        async with client:
            while progress.turns < limits.max_turns:
                try:
                    response = await create_message(
                        client,
                        limiter,
                        retry=self.retry,
                        deadline=deadline,
                        sleep=self._sleep,
                        on_retry=log_retry,
                        model=request.model,
                        max_tokens=self.max_tokens,
                        system=system,
                        tools=tools,
                        messages=_with_rolling_cache(messages),
                    )
                except API_ERRORS as exc:
                    failure = classify_error(exc)
                    log.write(f"-- turn {progress.turns + 1}: API error: {failure.failure_type}: {failure.message}")
                    return self._failure(request, progress, failure.failure_type, failure.message, failure.retry_after)
                progress.turns += 1
                turn = progress.turns

                if getattr(response, "usage", None) is None:  # the SDK does not validate a 200 body
                    log.write(f"-- turn {turn}: malformed response ({type(response).__name__}, no usage)")
                    return self._failure(request, progress, "agent_error",
                                         f"malformed API response on turn {turn}: no message usage")
                turn_usage = usage_from_response(response.usage)
                progress.usage = add_usage(progress.usage, turn_usage)
                try:
                    progress.cost = request.cost_of(request.model, progress.usage)
                except Exception as exc:  # unknown model in the pricing table
                    return self._failure(request, progress, "agent_error", f"cannot price model {request.model}: {exc}")
                if request.report_spend is not None:  # billed now, whatever ends the attempt
                    request.report_spend(progress.usage, progress.cost)
                problem = _malformed_content(response)
                if problem:  # its usage is counted above: the tokens were spent
                    log.write(f"-- turn {turn}: malformed response: {problem}")
                    return self._failure(request, progress, "agent_error", f"malformed API response on turn {turn}: {problem}")
                log.write(
                    f"-- turn {turn} · stop {response.stop_reason} · usage in={turn_usage.input_tokens}"
                    f" out={turn_usage.output_tokens} cache_read={turn_usage.cache_read_tokens}"
                    f" cache_write={turn_usage.cache_write_tokens} · spent ${progress.cost:.6f}"
                )
                for block in response.content:
                    if block.type == "text" and block.text.strip():
                        log.write("assistant: " + _clip(block.text, 4000))
                said = " ".join(b.text for b in response.content if b.type == "text").strip()
                if response.stop_reason == "refusal":
                    log.write(f"-- turn {turn}: the model refused")
                    return self._failure(request, progress, "agent_error",
                                         f"the model refused the task (stop_reason refusal) on turn {turn}"
                                         + (f": {_clip(said, 300)}" if said else ""))

                tool_uses = [b for b in response.content if b.type == "tool_use"]
                calls_finish = any(b.name == "finish" for b in tool_uses)
                over_budget = self._over_budget(request, progress)
                if over_budget and not calls_finish:
                    log.write(f"-- stopped: {over_budget}")
                    return self._failure(request, progress, "budget_exhausted", over_budget)

                echoed = content_to_params(response.content)
                if echoed:  # the API refuses an empty assistant message before the last one
                    messages.append({"role": "assistant", "content": echoed})
                if not tool_uses:
                    if response.stop_reason == "max_tokens":
                        messages.append(
                            {"role": "user", "content": "Your reply was cut off at the output limit. Continue in smaller steps."}
                        )
                        continue
                    if not said:  # nothing done and nothing said: not a success to integrate
                        log.write(f"-- turn {turn}: empty answer (stop {response.stop_reason})")
                        return self._failure(request, progress, "agent_error",
                                             f"the model ended its turn with an empty answer "
                                             f"(stop_reason {response.stop_reason}) on turn {turn}")
                    # The model ended its turn without tools: take its text as the summary.
                    return self._success(request, progress, said)

                results: list[dict[str, Any]] = []
                for call in tool_uses:
                    log.write(f"tool {call.name} {_clip(json.dumps(call.input, ensure_ascii=False), 1000)}")
                    outcome = await runner.run(call.name, call.input)
                    log.write(f"  -> {'ERROR ' if outcome.is_error else ''}{_clip(outcome.content)}")
                    if outcome.finished:
                        return self._success(request, progress, outcome.content)
                    results.append(
                        {
                            "type": "tool_result",
                            "tool_use_id": call.id,
                            "content": outcome.content,
                            "is_error": outcome.is_error,
                        }
                    )
                messages.append({"role": "user", "content": results})
        log.write(f"-- stopped: turn limit {limits.max_turns} reached")
        return self._failure(request, progress, "agent_error", f"turn limit {limits.max_turns} reached")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _over_budget(request: ImplementRequest, progress: _Progress) -> str | None:
        limits = request.limits
        if progress.cost >= limits.max_cost_usd:
            return f"cost limit ${limits.max_cost_usd:.2f} reached (spent ${progress.cost:.4f})"
        tokens = _total_tokens(progress.usage)
        if tokens >= limits.max_tokens:
            return f"token limit {limits.max_tokens} reached ({tokens} tokens used)"
        return None

    @staticmethod
    def _declared_excerpts(request: ImplementRequest) -> dict[str, str]:
        excerpts: dict[str, str] = {}
        budget = MAX_DECLARED_EXCERPT_CHARS
        for path in combined_task(request).declared_files:
            if budget <= 0:
                break
            try:
                text = request.sandbox.read_text(path)
            except Exception:  # not created yet, binary, or refused: the model can look itself
                continue
            excerpts[path] = text[:budget]
            budget -= len(text)
        return excerpts

    @staticmethod
    def _success(request: ImplementRequest, progress: _Progress, summary: str) -> ImplementResult:
        return ImplementResult(
            ok=True, model=request.model, usage=progress.usage, cost_usd=progress.cost, summary=redact(summary)
        )

    @staticmethod
    def _failure(
        request: ImplementRequest,
        progress: _Progress,
        failure_type: str,
        message: str,
        retry_after: float | None = None,
    ) -> ImplementResult:
        return ImplementResult(
            ok=False,
            model=request.model,
            usage=progress.usage,
            cost_usd=progress.cost,
            failure_type=failure_type,
            message=redact(message),
            retry_after=retry_after,
        )


def _malformed_content(response: Any) -> str | None:
    """Why a reply's content cannot drive the tool loop, or None when it can."""
    content = getattr(response, "content", None)
    if not isinstance(content, list):
        return f"content is {type(content).__name__}, not a list of blocks"
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text" and not isinstance(getattr(block, "text", None), str):
            return "a text block without text"
        if kind == "tool_use" and not (
            isinstance(getattr(block, "name", None), str) and isinstance(getattr(block, "id", None), str)
        ):
            return "a tool_use block without a name or id"
    return None


def _with_rolling_cache(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the newest message as a cache breakpoint so each turn reads the previous turns from cache.

    Only the last message gets one (besides tools, system and the task block): the API
    allows four breakpoints per request.
    """
    if len(messages) < 2:
        return messages
    last = messages[-1]
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not content:
        return messages
    marked = [*content[:-1], {**content[-1], "cache_control": EPHEMERAL}]
    return [*messages[:-1], {"role": last["role"], "content": marked}]
