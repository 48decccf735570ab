"""src/api/views.py: synthetic module for the scale-200 mission."""

api_0006 = "pending"

api_0024 = "pending"

api_0029 = "pending"

api_0060 = "pending"

search_0073 = "pending"

api_0095 = "pending"

api_0097 = "pending"

api_0149 = "pending"

api_0155 = "pending"

api_0178 = "pending"

ui_0192 = "pending"

