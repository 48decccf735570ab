"""src/auth/schema.py: synthetic module for the scale-200 mission."""

auth_0001 = "pending"

auth_0027 = "pending"

auth_0047 = "pending"

auth_0051 = "pending"

ui_0058 = "pending"

ui_0064 = "pending"

auth_0081 = "pending"

ui_0091 = "pending"

auth_0098 = "pending"

ui_0131 = "pending"

billing_0135 = "pending"

ui_0157 = "pending"

