"""src/auth/views.py: synthetic module for the scale-200 mission."""

