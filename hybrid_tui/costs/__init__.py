"""Costs: the pricing table, token -> dollar accounting, burn projection, the `estimate`
simulator and the `report` command."""

from hybrid_tui.costs.pricing import Pricing, PricingError, PricingTable, UnknownModel, expected_task_cost

__all__ = ["Pricing", "PricingError", "PricingTable", "UnknownModel", "expected_task_cost"]
