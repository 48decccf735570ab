"""src/auth/cache.py: synthetic module for the scale-200 mission."""

auth_0019 = "pending"

ui_0064 = "pending"

auth_0070 = "pending"

ui_0082 = "pending"

api_0118 = "pending"

