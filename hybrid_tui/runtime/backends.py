"""Backends by name: (planner, implementer) for ``replay``, ``sim``, ``anthropic``, ``cli``.

Room: runtime. Shared by the coordinator (in-process attempts) and a worker process (the
attempts it is sent), so both build a backend the same way.
"""

from __future__ import annotations

from typing import Any


class BackendUnavailable(ValueError):
    """A backend that cannot run this mission (unknown, or missing its configuration)."""


def make_backend(name: str, *, pace: float = 0.0, seed: int = 0, git: bool = True, failure_rate: float = 0.0, config: Any = None):
    """(planner, implementer) for a backend name."""
    # Imported on demand: each backend pulls in its own dependencies (the Anthropic SDK,
    # subprocess agents), which a run of another backend never needs.
    if name == "replay":
        from hybrid_tui.agents.replay import ReplayImplementer, ReplayPlanner

        return ReplayPlanner(), ReplayImplementer(pace=pace)
    if name == "sim":
        from hybrid_tui.agents.sim import SimImplementer, SimPlanner

        return SimPlanner(seed=seed, pace=pace), SimImplementer(seed=seed, pace=pace, git=git, failure_rate=failure_rate)
    if name == "anthropic":
        from hybrid_tui.agents import anthropic as backend  # type: ignore[attr-defined]

        return backend.make_planner(config), backend.make_implementer(config)  # type: ignore[attr-defined]
    if name == "cli":
        from hybrid_tui.agents.cli import make_implementer

        try:
            return None, make_implementer(config)
        except ValueError as exc:  # no command template, or one that does not parse
            raise BackendUnavailable(str(exc)) from None
    raise BackendUnavailable(f"unknown backend {name!r} (replay, sim, anthropic, cli)")
