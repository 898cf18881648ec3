"""Where bindings, accepted events, turns and the bridge-run group transcript are kept."""

from bridge.store.base import Store, StoreError
from bridge.store.database_url import DatabaseUrlError, check_database_url, open_store

__all__ = ["DatabaseUrlError", "Store", "StoreError", "check_database_url", "open_store"]
