"""src/search/utils.py: synthetic module for the scale-200 mission."""

search_0088 = "pending"

search_0090 = "pending"

