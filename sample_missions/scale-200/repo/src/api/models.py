"""src/api/models.py: synthetic module for the scale-200 mission."""

api_0020 = "pending"

