"""State store (peewee): the single source of truth for a run."""

from . import models
from .db import Store, StoreError, open_store, sqlite_url

__all__ = ["Store", "StoreError", "open_store", "sqlite_url", "models"]
