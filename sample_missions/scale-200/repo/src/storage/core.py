"""src/storage/core.py: synthetic module for the scale-200 mission."""

storage_0106 = "pending"

storage_0147 = "pending"

api_0159 = "pending"

storage_0163 = "pending"

storage_0199 = "pending"

