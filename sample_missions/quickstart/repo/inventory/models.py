"""Item records held by an inventory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str
    quantity: int = 0
    unit_price: float = 0.0

    def value(self) -> float:
        """Stock value of this item."""
        return self.quantity * self.unit_price
