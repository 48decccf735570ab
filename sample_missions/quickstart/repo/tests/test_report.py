from inventory import Inventory, Item
from inventory.report import stock_report


def test_report_lists_items_under_a_header():
    stock = Inventory()
    stock.add(Item("B-2", "Washer", quantity=40))
    stock.add(Item("A-1", "Hex bolt M6", quantity=120))
    lines = stock_report(stock).splitlines()
    assert lines[0].split() == ["SKU", "Name", "Qty"]
    assert lines[1].split() == ["A-1", "Hex", "bolt", "M6", "120"]
    assert lines[2].split() == ["B-2", "Washer", "40"]


def test_empty_inventory_has_only_the_header():
    assert stock_report(Inventory()).count("\n") == 1
