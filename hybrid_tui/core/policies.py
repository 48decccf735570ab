"""Room: core. The policy formulas as pure functions (no I/O, no clock).

Priority score (critical-path aware by default; the review's 4.1 as ``mode = "review"``), jittered backoff (5.4), pool scaling table (4.4), budget
alert levels. Every number comes from ``hybrid_tui.spec.models.PoliciesSection``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from hybrid_tui.spec.models import PoliciesSection, PriorityWeights, RetryRule


def needs_approval(gate: Collection[str], priority: str, task_id: str, domain: str) -> bool:
    """``[policies] approve`` (the ``gate``) names the task's priority class, id or domain."""
    return bool(gate) and (priority in gate or task_id in gate or domain in gate)


def priority_weight(weights: PriorityWeights, priority: str) -> float:
    """Points for the explicit priority (CRITICAL 100 / HIGH 70 / MEDIUM 40 / LOW 10)."""
    try:
        return float(getattr(weights, priority.lower()))
    except AttributeError:
        raise ValueError(f"unknown priority {priority!r} (CRITICAL, HIGH, MEDIUM or LOW)") from None


def priority_score(
    weights: PriorityWeights,
    *,
    priority: str,
    has_dependencies: bool,
    dependents: int,
    duration_minutes: float,
    file_locked: bool,
) -> float:
    """``calculate_task_priority_score`` of the review, every weight from ``weights``.

    score = priority + (no dependencies ? 50) + 10 * dependents
            - min(duration / 10, 30) - (a declared file locked ? 40)

    Note: the review's worked example (A-D = 140, 135, 45, 40) was computed with the
    duration penalty ``min(duration, 30)``, i.e. ``duration_divisor = 1``; DESIGN.md keeps
    the formula's ``/ 10`` as the default.
    """
    score = priority_weight(weights, priority)
    if not has_dependencies:
        score += weights.no_dependencies_bonus
    score += dependents * weights.per_dependent_bonus
    score -= min(duration_minutes / weights.duration_divisor, weights.duration_penalty_cap)
    if file_locked:
        score -= weights.locked_file_penalty
    return score


#: Points of one priority-class weight point in the critical-path score: far more than any
#: remaining path (in minutes) a mission has, so the class decides first (a CRITICAL task
#: is never starved by a LOW one) and the path only orders tasks of one class.
CLASS_SCALE = 1_000_000.0


def critical_path_score(weights: PriorityWeights, *, priority: str, remaining_path_minutes: float) -> float:
    """Default ``mode = "critical_path"``: the class weight, then the task's remaining
    critical path (its own estimate plus the longest chain of dependents after it), so the
    task that keeps the mission's end furthest away goes first (list scheduling by longest
    remaining path, which is within a few percent of optimal on real DAGs)."""
    return priority_weight(weights, priority) * CLASS_SCALE + remaining_path_minutes


def jittered_backoff(n: int, base: float, cap: float, jitter: float, rng: random.Random) -> float:
    """``min(base * 2**n, cap)`` +- ``jitter`` (a fraction) of it, drawn from ``rng``.

    ``n`` is 0 for the first retry, so base 1 s gives 1, 2, 4, 8, 16 s (+-25 %).
    """
    delay = min(base * (2**n), cap)
    if jitter:
        delay += delay * jitter * (rng.random() * 2 - 1)
    return max(delay, 0.0)


def retry_delay(
    rule: RetryRule,
    n: int,
    policies: PoliciesSection,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``n`` (0-based) under ``rule``.

    exponential: jittered ``min(base * 2**n, cap)``; linear: ``base`` every time;
    immediate: 0; retry_after: the server's Retry-After when given (honoured exactly),
    else exponential.
    """
    if rule.backoff == "immediate":
        return 0.0
    if rule.backoff == "linear":
        return float(rule.base_seconds)
    if rule.backoff == "retry_after" and retry_after is not None:
        return max(float(retry_after), 0.0)
    return jittered_backoff(n, rule.base_seconds, policies.backoff_cap_seconds, policies.backoff_jitter, rng)


def scaling_target(steps: Sequence[tuple[int, int]], queue_depth: int, pool_min: int, pool_max: int) -> int:
    """Pool size for a queue depth: the last step whose minimum depth is reached, clamped
    to ``[pool_min, pool_max]``. Default steps: 0-5 -> 4, 6-15 -> 8, 16+ -> 12."""
    size = pool_min
    for min_depth, step_size in sorted(steps):
        if queue_depth >= min_depth:
            size = step_size
    return max(pool_min, min(pool_max, size))


def alert_level(fraction: float) -> str:
    """Level of a budget alert at ``fraction`` of the budget (1.0 = exhausted)."""
    if fraction >= 1.0:
        return "critical"
    if fraction >= 0.75:
        return "warning"
    return "info"
