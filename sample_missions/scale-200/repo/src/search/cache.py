"""src/search/cache.py: synthetic module for the scale-200 mission."""

search_0004 = "pending"

search_0041 = "pending"

search_0071 = "pending"

search_0073 = "pending"

search_0103 = "pending"

