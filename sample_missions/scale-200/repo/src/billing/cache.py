"""src/billing/cache.py: synthetic module for the scale-200 mission."""

billing_0037 = "pending"

billing_0043 = "pending"

billing_0056 = "pending"

billing_0059 = "pending"

billing_0079 = "pending"

billing_0084 = "pending"

billing_0111 = "pending"

api_0116 = "pending"

billing_0125 = "pending"

billing_0136 = "pending"

api_0137 = "pending"

ui_0144 = "pending"

billing_0185 = "pending"

billing_0198 = "pending"

