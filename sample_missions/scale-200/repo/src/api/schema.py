"""src/api/schema.py: synthetic module for the scale-200 mission."""

api_0008 = "pending"

api_0102 = "pending"

api_0117 = "pending"

api_0160 = "pending"

