"""src/storage/schema.py: synthetic module for the scale-200 mission."""

api_0008 = "pending"

storage_0021 = "pending"

storage_0048 = "pending"

ui_0049 = "pending"

ui_0053 = "pending"

storage_0065 = "pending"

storage_0105 = "pending"

api_0129 = "pending"

storage_0145 = "pending"

storage_0173 = "pending"

