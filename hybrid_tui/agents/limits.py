"""Room: agents. The per-attempt dollar and token caps for backends whose whole spend is known
up front (``replay``, ``sim``): an attempt that would spend past its cap stops there instead.

A live backend (``anthropic``) checks the same limits after every turn; these backends have
no turns, so the attempt is cut at the cap: it does no work, spends exactly the cap (its usage
scaled to match) and fails with ``budget_exhausted``, the type the core sends to attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.models import Usage
from .base import AttemptLimits


@dataclass(frozen=True)
class CapStop:
    """Why and where an attempt stopped: the usage and cost it had spent when it reached its cap."""

    usage: Usage
    cost_usd: float
    message: str


def total_tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens


def stop_at_cap(limits: AttemptLimits, usage: Usage, cost_usd: float) -> CapStop | None:
    """``None`` when the attempt fits its limits, else what it spent up to the first cap reached."""
    tokens = total_tokens(usage)
    shares = []
    if cost_usd > limits.max_cost_usd:
        shares.append((limits.max_cost_usd / cost_usd,
                       f"cost limit ${limits.max_cost_usd:.4f} reached (the attempt needed ${cost_usd:.4f})"))
    if tokens > limits.max_tokens:
        shares.append((limits.max_tokens / tokens,
                       f"token limit {limits.max_tokens} reached (the attempt needed {tokens} tokens)"))
    if not shares:
        return None
    share, message = min(shares)
    spent = Usage(
        input_tokens=int(usage.input_tokens * share),
        output_tokens=int(usage.output_tokens * share),
        cache_read_tokens=int(usage.cache_read_tokens * share),
        cache_write_tokens=int(usage.cache_write_tokens * share),
    )
    # Never a float hair over the cap: the mission budget check relies on it.
    return CapStop(spent, min(cost_usd * share, limits.max_cost_usd), message)
