import pytest

from inventory import Inventory, Item, UnknownItem


def test_add_then_get():
    stock = Inventory()
    stock.add(Item("A-1", "Bolt", quantity=3))
    assert stock.get("A-1").quantity == 3
    assert "A-1" in stock and len(stock) == 1


def test_adding_an_existing_sku_increases_quantity():
    stock = Inventory()
    stock.add(Item("A-1", "Bolt", quantity=3))
    stock.add(Item("A-1", "Bolt", quantity=2))
    assert stock.get("A-1").quantity == 5


def test_remove_takes_units_out_of_stock():
    stock = Inventory()
    stock.add(Item("A-1", "Bolt", quantity=3))
    assert stock.remove("A-1", 2).quantity == 1


def test_remove_more_than_in_stock_is_refused():
    stock = Inventory()
    stock.add(Item("A-1", "Bolt", quantity=3))
    with pytest.raises(ValueError, match="only 3"):
        stock.remove("A-1", 4)
    assert stock.get("A-1").quantity == 3


def test_unknown_sku():
    with pytest.raises(UnknownItem):
        Inventory().get("nope")


def test_items_sorted_by_sku():
    stock = Inventory()
    for sku in ("C-3", "A-1", "B-2"):
        stock.add(Item(sku, sku.lower()))
    assert [item.sku for item in stock.items()] == ["A-1", "B-2", "C-3"]
