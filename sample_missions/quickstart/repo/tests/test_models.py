from inventory import Item


def test_value_is_quantity_times_unit_price():
    assert Item("A-1", "Bolt", quantity=4, unit_price=0.25).value() == 1.0


def test_new_item_defaults_to_empty_stock():
    item = Item("A-1", "Bolt")
    assert item.quantity == 0
    assert item.value() == 0
