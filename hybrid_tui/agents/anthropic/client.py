"""Anthropic SDK client construction, API error -> failure type mapping, and the shared rate limiter.

Room: agents. Reads credentials from the environment and talks HTTP through the SDK; it
never logs, stores or returns the credential (every text that leaves this package goes
through :func:`redact`).

- :func:`make_client` builds ``anthropic.AsyncAnthropic`` from ``ANTHROPIC_API_KEY`` (or
  ``ANTHROPIC_AUTH_TOKEN``) and ``ANTHROPIC_BASE_URL`` with ``max_retries=0``: the SDK's own
  retries ignore a ``retry-after`` above 60 s and know no deadline, so requests are retried
  here instead (:func:`call_with_retries`).
- :func:`call_with_retries` retries ONE request on a transient failure (429, 529, 5xx, 408,
  a dropped connection or a client timeout), waiting ``retry-after`` when the API gave one
  and an exponential backoff otherwise, never past the caller's deadline; the turns already
  answered are kept (a transient error at turn 5 does not restart the attempt). What is
  still failing after :class:`RequestRetry` ``max_retries`` goes to the core's policies.
- :func:`classify_error` turns an SDK exception into ``(failure_type, message, retry_after)``.
- :class:`RateLimiters` holds one token-bucket :class:`ModelRateLimiter` per model, shared
  by every planner and implementer of a run so parallel agents stay under the account's
  requests/input/output per-minute limits instead of all hitting 429 together.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import anthropic
import anyio

from hybrid_tui.spec.models import ModelLimits, Usage
from hybrid_tui.vocabulary import redact

DEFAULT_TIMEOUT_SECONDS = 600.0


class MissingCredentials(RuntimeError):
    """Neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN is set."""


def make_client(
    *, timeout: float = DEFAULT_TIMEOUT_SECONDS, base_url: str | None = None
) -> anthropic.AsyncAnthropic:
    """A fresh async client from the environment. Callers close it (``async with``)."""
    api_key = os.environ.get("ANTHROPIC_API_KEY") or None
    auth_token = None if api_key else (os.environ.get("ANTHROPIC_AUTH_TOKEN") or None)
    if not api_key and not auth_token:
        raise MissingCredentials(
            "no Anthropic credential: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN for a gateway)"
        )
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        auth_token=auth_token,
        base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
        timeout=timeout,
        max_retries=0,
    )


def default_client_factory(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Callable[[], anthropic.AsyncAnthropic]:
    return lambda: make_client(timeout=timeout)


# ------------------------------------------------------------------------ error mapping


@dataclass(frozen=True)
class ApiFailure:
    failure_type: str
    message: str
    retry_after: float | None = None


def parse_retry_after(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _api_message(exc: anthropic.APIStatusError) -> str:
    message = getattr(exc, "api_message", None)
    if not message:
        body = exc.body
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                message = error.get("message")
    return str(message or exc.message or f"HTTP {exc.status_code}")


def classify_error(exc: BaseException) -> ApiFailure:
    """Map an SDK exception to the core's failure types (see ``agents.base.FAILURE_TYPES``)."""
    if isinstance(exc, MissingCredentials):
        return ApiFailure("agent_error", str(exc))
    if isinstance(exc, anthropic.APITimeoutError):
        return ApiFailure("network_error", "Anthropic API request timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}" if cause else ""
        return ApiFailure("network_error", redact(f"connection to the Anthropic API failed{detail}"))
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        text = redact(_api_message(exc))
        retry_after = parse_retry_after(exc.response.headers)
        if status == 429:
            wait = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
            return ApiFailure("rate_limited", f"rate limited by the Anthropic API{wait}: {text}", retry_after)
        if status == 529:
            return ApiFailure("network_error", f"Anthropic API overloaded (529): {text}", retry_after)
        if status >= 500 or status == 408:
            return ApiFailure("network_error", f"Anthropic API server error ({status}): {text}", retry_after)
        return ApiFailure("agent_error", f"Anthropic API rejected the request ({status}): {text}")
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ApiFailure("agent_error", redact(f"unexpected response from the Anthropic API: {exc.message}"))
    if isinstance(exc, anthropic.AnthropicError):
        return ApiFailure("agent_error", redact(f"Anthropic SDK error: {exc}"))
    raise TypeError(f"not an API error: {type(exc).__name__}")  # pragma: no cover


API_ERRORS = (anthropic.AnthropicError, MissingCredentials)


# ------------------------------------------------------------------------ usage


def usage_from_response(usage: Any) -> Usage:
    """The SDK's ``Usage`` (or a plain dict from a batch result) as our ``Usage``."""
    if usage is None:
        return Usage()
    get = usage.get if isinstance(usage, dict) else (lambda key: getattr(usage, key, None))
    return Usage(
        input_tokens=int(get("input_tokens") or 0),
        output_tokens=int(get("output_tokens") or 0),
        cache_read_tokens=int(get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(get("cache_creation_input_tokens") or 0),
    )


def add_usage(total: Usage, more: Usage) -> Usage:
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        cache_read_tokens=total.cache_read_tokens + more.cache_read_tokens,
        cache_write_tokens=total.cache_write_tokens + more.cache_write_tokens,
    )


def estimate_input_tokens(payload: Any) -> int:
    """A rough count (4 characters a token) used only to pace requests before sending them."""
    return max(1, len(json.dumps(payload, default=str)) // 4)


# ------------------------------------------------------------------------ rate limiting


class TokenBucket:
    """Refills ``capacity`` units per minute continuously; may go negative after a settle."""

    def __init__(self, capacity: float, clock: Callable[[], float]):
        self.capacity = float(capacity)
        self.level = float(capacity)
        self._clock = clock
        self._stamp = clock()

    def refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self.level = min(self.capacity, self.level + elapsed * self.capacity / 60.0)

    def seconds_until(self, amount: float) -> float:
        """Seconds until ``amount`` (capped at the capacity, so huge requests still pass) is available."""
        needed = min(amount, self.capacity) - self.level
        return 0.0 if needed <= 0 else needed * 60.0 / self.capacity

    def take(self, amount: float) -> None:
        self.level -= amount


class ModelRateLimiter:
    """Requests, input tokens and output tokens per minute for one model.

    ``acquire`` waits (FIFO: one waiter at a time) until a request slot, the estimated input
    tokens and some output capacity are free, then takes them; ``settle`` charges the real
    usage once the response is known (output tokens are unknown before the request).
    """

    def __init__(
        self,
        limits: ModelLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ):
        self.limits = limits
        self._sleep = sleep
        self.requests = TokenBucket(limits.requests_per_minute, clock)
        self.input_tokens = TokenBucket(limits.input_tokens_per_minute, clock)
        self.output_tokens = TokenBucket(limits.output_tokens_per_minute, clock)
        self._lock: anyio.Lock | None = None
        self.waited_seconds = 0.0

    def _buckets(self) -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        return self.requests, self.input_tokens, self.output_tokens

    async def acquire(self, estimated_input_tokens: int) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            while True:
                for bucket in self._buckets():
                    bucket.refill()
                wait = max(
                    self.requests.seconds_until(1),
                    self.input_tokens.seconds_until(estimated_input_tokens),
                    self.output_tokens.seconds_until(1),
                )
                if wait <= 0:
                    self.requests.take(1)
                    self.input_tokens.take(estimated_input_tokens)
                    return
                self.waited_seconds += wait
                await self._sleep(math.ceil(wait * 1000) / 1000)

    def settle(self, estimated_input_tokens: int, usage: Usage) -> None:
        # Cache reads do not count towards the input-tokens-per-minute limit; cache writes do.
        actual_input = usage.input_tokens + usage.cache_write_tokens
        self.input_tokens.take(actual_input - estimated_input_tokens)
        self.output_tokens.take(usage.output_tokens)


class RateLimiters:
    """One limiter per model, created on first use from ``[models] limits`` (defaults otherwise)."""

    def __init__(
        self,
        limits: dict[str, ModelLimits] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ):
        self._limits = dict(limits or {})
        self._clock = clock
        self._sleep = sleep
        self._by_model: dict[str, ModelRateLimiter] = {}

    def for_model(self, model: str) -> ModelRateLimiter:
        limiter = self._by_model.get(model)
        if limiter is None:
            limits = self._limits.get(model) or ModelLimits()
            limiter = self._by_model[model] = ModelRateLimiter(limits, clock=self._clock, sleep=self._sleep)
        return limiter


ClientFactory = Callable[[], anthropic.AsyncAnthropic]


# ------------------------------------------------------------------------ request retries

TRANSIENT_FAILURES = ("network_error", "rate_limited")


@dataclass(frozen=True)
class RequestRetry:
    """How one API request is retried before its failure reaches the core's policies."""

    max_retries: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 60.0  # backoff cap; a longer retry-after is still honoured


DEFAULT_RETRY = RequestRetry()
NO_RETRY = RequestRetry(max_retries=0)
BATCH_POLL_RETRY = RequestRetry(max_retries=8)  # a whole batch is worth more patience than one request


def _server_forbids_retry(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers is not None and str(headers.get("x-should-retry", "")).lower() == "false"


async def call_with_retries(
    call: Callable[[], Awaitable[Any]],
    *,
    retry: RequestRetry = DEFAULT_RETRY,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[ApiFailure, float, int], None] | None = None,
) -> Any:
    """Run ``call`` (one API request), retrying it on a transient failure.

    Waits the server's ``retry-after`` when it gave one, else ``base·2^n`` (capped, ±25 %
    so parallel agents do not come back together). Gives up - re-raising the last error for
    the caller to classify - after ``retry.max_retries`` retries, when the server says
    ``x-should-retry: false``, or when the wait would end past ``deadline`` (``clock``
    seconds): the core then decides, with the failure's ``retry_after``.
    """
    retries = 0
    while True:
        try:
            return await call()
        except API_ERRORS as exc:
            failure = classify_error(exc)
            if (failure.failure_type not in TRANSIENT_FAILURES or retries >= retry.max_retries
                    or _server_forbids_retry(exc)):
                raise
            if failure.retry_after is not None:
                wait = failure.retry_after
            else:
                wait = min(retry.base_seconds * 2 ** retries, retry.max_seconds) * random.uniform(0.75, 1.25)
            if deadline is not None and clock() + wait >= deadline:
                raise
            retries += 1
            if on_retry is not None:
                on_retry(failure, wait, retries)
            await sleep(wait)


async def create_message(
    client: anthropic.AsyncAnthropic,
    limiter: ModelRateLimiter | None,
    *,
    retry: RequestRetry = NO_RETRY,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    on_retry: Callable[[ApiFailure, float, int], None] | None = None,
    **params: Any,
) -> Any:
    """``client.messages.create`` paced by ``limiter`` and retried per ``retry``; the caller
    classifies the API error that is left."""
    estimate = estimate_input_tokens({k: params.get(k) for k in ("system", "tools", "messages")})

    async def once() -> Any:
        if limiter is not None:
            await limiter.acquire(estimate)
        response = await client.messages.create(**params)
        if limiter is not None:
            limiter.settle(estimate, usage_from_response(response.usage))
        return response

    return await call_with_retries(once, retry=retry, deadline=deadline, sleep=sleep, on_retry=on_retry)


EPHEMERAL = {"type": "ephemeral"}


def content_to_params(blocks: Any) -> list[dict[str, Any]]:
    """A response's content blocks as request params, to send the assistant turn back."""
    out: list[dict[str, Any]] = []
    for block in blocks or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            if block.text.strip():  # the API refuses an empty (or blank) text block sent back
                out.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            out.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        else:  # thinking and other blocks must be echoed unchanged
            out.append(block.model_dump(mode="json", exclude_none=True))
    return out
