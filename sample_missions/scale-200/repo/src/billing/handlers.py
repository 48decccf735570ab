"""src/billing/handlers.py: synthetic module for the scale-200 mission."""

storage_0034 = "pending"

billing_0063 = "pending"

billing_0080 = "pending"

billing_0087 = "pending"

search_0096 = "pending"

billing_0135 = "pending"

billing_0184 = "pending"

