"""State store (peewee): the single source of truth for a run."""

from hybrid_tui.store import models
from hybrid_tui.store.db import Store, StoreError, open_store, sqlite_url

__all__ = ["Store", "StoreError", "open_store", "sqlite_url", "models"]
