"""The search module."""
