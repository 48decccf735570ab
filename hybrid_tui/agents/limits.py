"""Room: agents. The per-attempt dollar cap for backends whose whole spend is known up front
(``replay``, ``sim``): an attempt that would spend past its cap stops there instead.

A live backend (``anthropic``) checks its limits after every turn; these backends have no
turns, so the attempt is cut at the cap: it does no work, spends exactly the cap (its usage
scaled to match) and fails with ``budget_exhausted``, the type the core sends to attention.
Only the dollar cap applies here: the runtime holds it to what the mission budget has left.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_tui.spec.models import Usage
from hybrid_tui.agents.base import AttemptLimits


@dataclass(frozen=True)
class CapStop:
    """Where an attempt stopped: the usage and cost it had spent when it reached its cap, and why."""

    usage: Usage
    cost_usd: float
    message: str


def stop_at_cap(limits: AttemptLimits, usage: Usage, cost_usd: float) -> CapStop | None:
    """``None`` when the attempt's cost fits its cap, else what it spent up to the cap."""
    if cost_usd <= limits.max_cost_usd:
        return None
    share = limits.max_cost_usd / cost_usd
    spent = Usage(
        input_tokens=int(usage.input_tokens * share),
        output_tokens=int(usage.output_tokens * share),
        cache_read_tokens=int(usage.cache_read_tokens * share),
        cache_write_tokens=int(usage.cache_write_tokens * share),
    )
    # Never a float hair over the cap: the mission budget check relies on it.
    message = f"cost limit ${limits.max_cost_usd:.4f} reached (the attempt needed ${cost_usd:.4f})"
    return CapStop(spent, min(cost_usd * share, limits.max_cost_usd), message)
