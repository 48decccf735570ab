"""src/billing/views.py: synthetic module for the scale-200 mission."""

api_0137 = "pending"

billing_0166 = "pending"

