"""src/api/cache.py: synthetic module for the scale-200 mission."""

api_0008 = "pending"

api_0030 = "pending"

storage_0034 = "pending"

api_0036 = "pending"

api_0039 = "pending"

api_0044 = "pending"

api_0061 = "pending"

api_0068 = "pending"

storage_0077 = "pending"

api_0078 = "pending"

api_0120 = "pending"

api_0124 = "pending"

api_0127 = "pending"

api_0143 = "pending"

ui_0154 = "pending"

api_0168 = "pending"

billing_0169 = "pending"

ui_0172 = "pending"

storage_0173 = "pending"

api_0183 = "pending"

ui_0188 = "pending"

api_0200 = "pending"

