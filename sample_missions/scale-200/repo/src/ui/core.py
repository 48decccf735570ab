"""src/ui/core.py: synthetic module for the scale-200 mission."""

auth_0098 = "pending"

ui_0131 = "pending"

billing_0198 = "pending"

