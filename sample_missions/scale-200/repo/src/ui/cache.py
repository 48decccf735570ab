"""src/ui/cache.py: synthetic module for the scale-200 mission."""

search_0004 = "pending"

ui_0035 = "pending"

ui_0053 = "pending"

storage_0107 = "pending"

ui_0112 = "pending"

ui_0115 = "pending"

ui_0172 = "pending"

ui_0179 = "pending"

