"""src/ui/client.py: synthetic module for the scale-200 mission."""

billing_0067 = "pending"

ui_0114 = "pending"

billing_0181 = "pending"

ui_0197 = "pending"

