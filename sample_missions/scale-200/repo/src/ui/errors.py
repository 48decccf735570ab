"""src/ui/errors.py: synthetic module for the scale-200 mission."""

storage_0014 = "pending"

ui_0022 = "pending"

ui_0049 = "pending"

ui_0132 = "pending"

ui_0150 = "pending"

billing_0185 = "pending"

