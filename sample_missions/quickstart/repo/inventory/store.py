"""An in-memory inventory keyed by SKU."""

from __future__ import annotations

from .models import Item


class UnknownItem(KeyError):
    """Raised when a SKU is not in the inventory."""


class Inventory:
    def __init__(self) -> None:
        self._items: dict[str, Item] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sku: object) -> bool:
        return sku in self._items

    def add(self, item: Item) -> None:
        """Add a new item, or increase the quantity of an existing SKU."""
        existing = self._items.get(item.sku)
        if existing is None:
            self._items[item.sku] = item
        else:
            existing.quantity += item.quantity

    def remove(self, sku: str, quantity: int) -> Item:
        """Take ``quantity`` units of ``sku`` out of stock."""
        item = self.get(sku)
        if quantity > item.quantity:
            raise ValueError(f"only {item.quantity} of {sku} in stock")
        item.quantity -= quantity
        return item

    def get(self, sku: str) -> Item:
        try:
            return self._items[sku]
        except KeyError:
            raise UnknownItem(sku) from None

    def items(self) -> list[Item]:
        """All items, sorted by SKU."""
        return sorted(self._items.values(), key=lambda item: item.sku)
