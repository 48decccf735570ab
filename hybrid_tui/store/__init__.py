"""State store (peewee): the single source of truth for a run.

Room: store. The only room that imports peewee and the models (``store.models``). Others
open a store (``open_store``) and call its functions: ``store.queries`` and
``store.cost_queries`` for reads (plain records from ``store.records`` back),
``store.runs`` to create and list runs, ``Store.enqueue_control`` for operator commands.
"""

from hybrid_tui.store.db import Store, StoreError, open_store, sqlite_url, stores_unsafe_to_close

__all__ = ["Store", "StoreError", "open_store", "sqlite_url", "stores_unsafe_to_close"]
