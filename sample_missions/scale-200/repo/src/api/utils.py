"""src/api/utils.py: synthetic module for the scale-200 mission."""

ui_0010 = "pending"

search_0170 = "pending"

