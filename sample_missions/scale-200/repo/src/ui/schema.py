"""src/ui/schema.py: synthetic module for the scale-200 mission."""

api_0052 = "pending"

