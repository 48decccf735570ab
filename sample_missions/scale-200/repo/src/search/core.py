"""src/search/core.py: synthetic module for the scale-200 mission."""

search_0040 = "pending"

ui_0162 = "pending"

