"""Mission and SIS formats: typed models, JSON Schema, loading and validation."""
