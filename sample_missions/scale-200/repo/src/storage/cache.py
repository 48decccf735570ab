"""src/storage/cache.py: synthetic module for the scale-200 mission."""

storage_0003 = "pending"

