"""src/api/config.py: synthetic module for the scale-200 mission."""

api_0025 = "pending"

billing_0037 = "pending"

api_0042 = "pending"

api_0044 = "pending"

storage_0046 = "pending"

ui_0049 = "pending"

auth_0051 = "pending"

api_0052 = "pending"

api_0061 = "pending"

api_0075 = "pending"

api_0093 = "pending"

search_0096 = "pending"

ui_0100 = "pending"

storage_0107 = "pending"

api_0108 = "pending"

api_0109 = "pending"

api_0116 = "pending"

api_0118 = "pending"

ui_0121 = "pending"

api_0122 = "pending"

ui_0128 = "pending"

api_0129 = "pending"

api_0137 = "pending"

api_0149 = "pending"

api_0151 = "pending"

api_0153 = "pending"

ui_0157 = "pending"

api_0158 = "pending"

api_0159 = "pending"

billing_0166 = "pending"

api_0178 = "pending"

api_0189 = "pending"

ui_0192 = "pending"

api_0196 = "pending"

