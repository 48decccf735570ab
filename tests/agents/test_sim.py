"""The ``sim`` backend's numbers: the same seed, task and attempt give the same latency, usage
and outcome, release after release (demos, load tests and the estimate simulator read them)."""

from __future__ import annotations

import random
import zlib

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_tui.agents.base import AttemptLimits, ImplementRequest
from hybrid_tui.agents.sim import SimImplementer
from hybrid_tui.spec.models import SisTask, Usage

SPEC = SisTask.model_validate({
    "task_id": "t1",
    "title": "Edit a",
    "estimated_duration_minutes": 12,
    "estimated_tokens": {"input": 10_000, "output": 2_000},
})


def reference_rng(seed: int, *parts: object) -> random.Random:
    """How sim seeded its generator when these numbers were first published."""
    key = "\x1f".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(zlib.crc32(key) ^ (seed << 32))


def test_published_numbers_do_not_move():
    # Taken from the implementation that drew them with random.Random(...).uniform(0.7, 1.3).
    expected = {
        0: ([(11995, 2379), (8608, 2456), (9418, 2085)], [38.24180701428985, 32.62349505521754, 39.359820967639095]),
        7: ([(7733, 1959), (10572, 1913), (9225, 1477)], [37.08725501082854, 29.640043540373807, 37.63985134406175]),
    }
    for seed, (usages, latencies) in expected.items():
        sim = SimImplementer(seed=seed, pace=0.05)
        assert [(sim.usage(SPEC, n).input_tokens, sim.usage(SPEC, n).output_tokens) for n in (1, 2, 3)] == usages
        assert [sim.latency(SPEC, n) for n in (1, 2, 3)] == latencies


task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(-(2**40), 2**70),
    task_id=task_ids,
    attempt=st.integers(1, 10_000),
    tokens_in=st.integers(0, 10**9),
    tokens_out=st.integers(0, 10**9),
    minutes=st.floats(0, 10_000, allow_nan=False),
    pace=st.floats(0.0001, 100, allow_nan=False),
)
def test_usage_and_latency_are_the_reference_draws(seed, task_id, attempt, tokens_in, tokens_out, minutes, pace):
    spec = SisTask(task_id=task_id, title="t", estimated_duration_minutes=minutes,
                   estimated_tokens={"input": tokens_in, "output": tokens_out})
    sim = SimImplementer(seed=seed, pace=pace)
    rng = reference_rng(seed, "usage", task_id, attempt)
    assert sim.usage(spec, attempt) == Usage(
        input_tokens=int(tokens_in * rng.uniform(0.7, 1.3)), output_tokens=int(tokens_out * rng.uniform(0.7, 1.3))
    )
    rng = reference_rng(seed, "latency", task_id, attempt)
    assert sim.latency(spec, attempt) == minutes * 60 * pace * rng.uniform(0.7, 1.3)


def test_an_instant_attempt_reports_the_seeded_usage_and_its_cost():
    sim = SimImplementer(seed=3, git=False)
    request = ImplementRequest(
        run_id="r", task=SPEC, attempt=2, agent_id="agent-01", model="m", sandbox=None,  # type: ignore[arg-type]
        log_path=None, cost_of=lambda model, usage: usage.input_tokens / 1e6,  # type: ignore[arg-type]
        limits=AttemptLimits(max_cost_usd=1.0),
    )
    result = anyio.run(sim.implement, request)
    assert result.ok and result.usage == sim.usage(SPEC, 2) == SimImplementer(seed=3).usage(SPEC, 2)
    assert result.cost_usd == result.usage.input_tokens / 1e6
    assert result.usage != SimImplementer(seed=4).usage(SPEC, 2)


def test_a_batch_is_each_task_simulated_and_applied_with_the_shared_context_paid_once(tmp_path):
    """[policies.batch] on the sim backend: every member's operations land in the one sandbox
    and each member but the first spends the shared context (5,000 input tokens) less."""
    from hybrid_tui.agents.base import BatchMember
    from hybrid_tui.workspace.sandbox import Sandbox

    specs = [SisTask(task_id=tid, title=tid, estimated_tokens={"input": 9000, "output": 100},
                     file_operations=[{"op": "create", "path": f"{tid}.txt", "content": tid}]) for tid in ("a", "b")]
    sim = SimImplementer(seed=5)
    request = ImplementRequest(
        run_id="r", task=specs[0], attempt=1, agent_id="agent-01", model="m",
        sandbox=Sandbox(tmp_path, declared=["a.txt", "b.txt"], claim=lambda path: False),
        log_path=tmp_path / "log", cost_of=lambda model, usage: usage.input_tokens / 1e6,  # type: ignore[arg-type]
        limits=AttemptLimits(max_cost_usd=1.0), batch=tuple(BatchMember(s) for s in specs), shared_context_tokens=5000,
    )
    result = anyio.run(sim.implement, request)
    assert result.ok and sorted(result.per_task) == ["a", "b"]
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.txt").read_text() == "b"
    assert result.per_task["a"].usage == sim.usage(specs[0], 1)
    alone = sim.usage(specs[1], 1)
    assert result.per_task["b"].usage.input_tokens == alone.input_tokens - 5000
    assert result.per_task["b"].cost_usd == pytest.approx((alone.input_tokens - 5000) / 1e6)
    assert result.cost_usd == sum(r.cost_usd for r in result.per_task.values())
