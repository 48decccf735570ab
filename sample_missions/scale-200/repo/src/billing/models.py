"""src/billing/models.py: synthetic module for the scale-200 mission."""

billing_0043 = "pending"

billing_0167 = "pending"

billing_0169 = "pending"

billing_0181 = "pending"

