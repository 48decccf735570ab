"""The ``anthropic`` backend: Claude as L2 planner (forced ``submit_sis``) and L3 implementer (tool loop).

Room: agents. Uses the official SDK; credentials come from the environment and never
leave ``client.py`` (see :func:`~.client.redact`).

The runtime builds the backend with :func:`make_planner` / :func:`make_implementer`,
passing the mission's config so both share one rate limiter per model (``[models] limits``)
and the implementer's output size.
"""

from __future__ import annotations

from typing import Any

from hybrid_tui.spec.models import MissionFile
from hybrid_tui.agents.anthropic.client import RateLimiters, classify_error, default_client_factory, make_client
from hybrid_tui.agents.anthropic.implementer import AnthropicImplementer
from hybrid_tui.agents.anthropic.planner import AnthropicPlanner

__all__ = [
    "AnthropicImplementer",
    "AnthropicPlanner",
    "RateLimiters",
    "classify_error",
    "make_client",
    "make_implementer",
    "make_planner",
    "shared_limiters",
]

_LIMITERS: dict[str, RateLimiters] = {}


def _mission_file(config: Any) -> MissionFile | None:
    if config is None:
        return None
    return getattr(config, "config", config)  # a loaded Mission or its MissionFile


def shared_limiters(config: Any = None) -> RateLimiters:
    """One limiter registry per distinct ``[models] limits`` table, shared by every agent of the process."""
    mission = _mission_file(config)
    limits = dict(mission.models.limits) if mission else {}
    key = repr(sorted((name, lim.model_dump_json()) for name, lim in limits.items()))
    registry = _LIMITERS.get(key)
    if registry is None:
        registry = _LIMITERS[key] = RateLimiters(limits)
    return registry


def make_planner(config: Any = None, *, batch: bool = False, **options: Any) -> AnthropicPlanner:
    mission = _mission_file(config)
    concurrency = mission.agents.planners if mission else 4
    if mission is not None:
        options.setdefault("max_tokens", mission.models.planner_max_tokens)
    return AnthropicPlanner(
        default_client_factory(), batch=batch, limiters=shared_limiters(config), concurrency=concurrency, **options
    )


def make_implementer(config: Any = None, **options: Any) -> AnthropicImplementer:
    mission = _mission_file(config)
    if mission is not None:
        options.setdefault("max_tokens", mission.models.implementer_max_tokens)
    return AnthropicImplementer(default_client_factory(), limiters=shared_limiters(config), **options)
