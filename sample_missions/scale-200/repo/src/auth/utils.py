"""src/auth/utils.py: synthetic module for the scale-200 mission."""

billing_0059 = "pending"

auth_0066 = "pending"

storage_0106 = "pending"

