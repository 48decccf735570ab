"""src/storage/config.py: synthetic module for the scale-200 mission."""

storage_0011 = "pending"

storage_0017 = "pending"

storage_0045 = "pending"

storage_0046 = "pending"

storage_0055 = "pending"

ui_0058 = "pending"

storage_0077 = "pending"

storage_0107 = "pending"

storage_0152 = "pending"

api_0159 = "pending"

storage_0161 = "pending"

storage_0163 = "pending"

search_0170 = "pending"

storage_0171 = "pending"

storage_0187 = "pending"

search_0193 = "pending"

