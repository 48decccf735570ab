"""src/billing/utils.py: synthetic module for the scale-200 mission."""

billing_0083 = "pending"

billing_0092 = "pending"

storage_0161 = "pending"

