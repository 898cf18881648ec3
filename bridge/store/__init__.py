"""Where bindings, accepted events, turns and the bridge-run group transcript are kept."""

from bridge.store.base import DatabaseUrlError, Store, StoreError, check_database_url, open_store

__all__ = ["DatabaseUrlError", "Store", "StoreError", "check_database_url", "open_store"]
