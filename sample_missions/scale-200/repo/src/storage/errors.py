"""src/storage/errors.py: synthetic module for the scale-200 mission."""

storage_0023 = "pending"

storage_0046 = "pending"

ui_0089 = "pending"

storage_0110 = "pending"

billing_0111 = "pending"

storage_0139 = "pending"

