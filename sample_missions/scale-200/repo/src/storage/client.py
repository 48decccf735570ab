"""src/storage/client.py: synthetic module for the scale-200 mission."""

storage_0031 = "pending"

storage_0034 = "pending"

