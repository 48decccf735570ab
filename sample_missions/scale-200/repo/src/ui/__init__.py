"""The ui module."""
