"""src/api/client.py: synthetic module for the scale-200 mission."""

api_0038 = "pending"

billing_0083 = "pending"

api_0119 = "pending"

api_0126 = "pending"

