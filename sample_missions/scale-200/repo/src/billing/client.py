"""src/billing/client.py: synthetic module for the scale-200 mission."""

billing_0018 = "pending"

auth_0027 = "pending"

billing_0067 = "pending"

billing_0111 = "pending"

billing_0185 = "pending"

ui_0188 = "pending"

