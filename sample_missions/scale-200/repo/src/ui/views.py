"""src/ui/views.py: synthetic module for the scale-200 mission."""

ui_0002 = "pending"

ui_0191 = "pending"

