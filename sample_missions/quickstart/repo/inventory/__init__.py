"""A tiny stock-keeping library."""

from .models import Item
from .store import Inventory, UnknownItem

__all__ = ["Inventory", "Item", "UnknownItem"]
