"""The shared per-model token buckets, on a virtual clock (no wall time)."""

from __future__ import annotations

import anyio

from hybrid_tui.agents.anthropic.client import RateLimiters, parse_retry_after
from hybrid_tui.spec.models import ModelLimits, Usage


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_per_minute_spaces_requests_out():
    clock = VirtualClock()
    limiters = RateLimiters({"m": ModelLimits(requests_per_minute=2)}, clock=clock, sleep=clock.sleep)

    async def main() -> list[float]:
        started = []
        for _ in range(4):
            await limiters.for_model("m").acquire(10)
            started.append(clock.now)
        return started

    # Two at once (the bucket starts full), then one every 30 s.
    assert anyio.run(main) == [0.0, 0.0, 30.0, 60.0]


def test_output_tokens_are_charged_after_the_response():
    clock = VirtualClock()
    limiters = RateLimiters(
        {"m": ModelLimits(requests_per_minute=1000, output_tokens_per_minute=1000)}, clock=clock, sleep=clock.sleep
    )
    limiter = limiters.for_model("m")

    async def main() -> None:
        await limiter.acquire(10)
        limiter.settle(10, Usage(input_tokens=10, output_tokens=1500))  # 500 tokens over the minute's budget
        await limiter.acquire(10)

    anyio.run(main)
    # The next request waits until the bucket is back above zero: 501 tokens at 1000/min.
    assert round(clock.now, 2) == 30.06


def test_parallel_agents_share_one_limiter_per_model():
    clock = VirtualClock()
    limiters = RateLimiters({"a": ModelLimits(requests_per_minute=1)}, clock=clock, sleep=clock.sleep)
    assert limiters.for_model("a") is limiters.for_model("a")
    assert limiters.for_model("b").limits == ModelLimits()  # defaults for models without limits

    async def main() -> list[float]:
        times: list[float] = []

        async def agent() -> None:
            await limiters.for_model("a").acquire(1)
            times.append(clock.now)

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(agent)
        return sorted(times)

    assert anyio.run(main) == [0.0, 60.0, 120.0]


def test_retry_after_header_forms():
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412500.0) == 10.0
    assert parse_retry_after({}) is None


def test_the_default_limits_do_not_stall_the_planner_after_a_long_answer():
    """Issue 18 item 9: the default output-tokens/minute limit is not below the planner's own
    max_tokens, so a planner answer of max_tokens does not make the next call wait a minute."""
    from hybrid_tui.agents.anthropic import make_planner
    from hybrid_tui.agents.anthropic.planner import AnthropicPlanner
    from hybrid_tui.spec.models import MissionFile, ModelsSection

    defaults = ModelsSection()
    per_minute = ModelLimits().output_tokens_per_minute
    assert defaults.planner_max_tokens <= per_minute and defaults.implementer_max_tokens <= per_minute
    assert AnthropicPlanner(lambda: None).max_tokens <= per_minute
    config = MissionFile.model_validate({"mission": {"name": "m", "repo": "."}})
    assert make_planner(config).max_tokens == defaults.planner_max_tokens

    clock = VirtualClock()
    limiter = RateLimiters(clock=clock, sleep=clock.sleep).for_model(defaults.planner)

    async def main() -> None:
        await limiter.acquire(2000)
        limiter.settle(2000, Usage(input_tokens=2000, output_tokens=defaults.planner_max_tokens))
        await limiter.acquire(2000)

    anyio.run(main)
    assert clock.now < 0.01  # not the 61 s the issue saw
