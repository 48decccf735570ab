"""src/storage/models.py: synthetic module for the scale-200 mission."""

storage_0003 = "pending"

storage_0009 = "pending"

api_0039 = "pending"

search_0088 = "pending"

ui_0128 = "pending"

storage_0146 = "pending"

storage_0165 = "pending"

billing_0167 = "pending"

storage_0177 = "pending"

storage_0180 = "pending"

