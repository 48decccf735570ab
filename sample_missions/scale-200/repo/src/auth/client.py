"""src/auth/client.py: synthetic module for the scale-200 mission."""

api_0093 = "pending"

