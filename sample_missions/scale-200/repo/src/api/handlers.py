"""src/api/handlers.py: synthetic module for the scale-200 mission."""

api_0130 = "pending"

