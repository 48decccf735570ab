"""src/storage/views.py: synthetic module for the scale-200 mission."""

storage_0014 = "pending"

