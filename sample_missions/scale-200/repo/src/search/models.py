"""src/search/models.py: synthetic module for the scale-200 mission."""

search_0012 = "pending"

search_0062 = "pending"

search_0096 = "pending"

search_0170 = "pending"

search_0193 = "pending"

