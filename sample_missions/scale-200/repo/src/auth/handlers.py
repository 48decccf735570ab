"""src/auth/handlers.py: synthetic module for the scale-200 mission."""

auth_0001 = "pending"

auth_0174 = "pending"

