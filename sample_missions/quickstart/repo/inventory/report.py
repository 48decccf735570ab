"""Plain-text stock reports."""

from __future__ import annotations

from .store import Inventory


def stock_report(inventory: Inventory) -> str:
    """One line per item, sorted by SKU, under a header."""
    lines = [f"{'SKU':<10}{'Name':<24}{'Qty':>6}"]
    for item in inventory.items():
        lines.append(f"{item.sku:<10}{item.name:<24}{item.quantity:>6}")
    return "\n".join(lines) + "\n"
