"""Where bindings, accepted events, turns and the bridge-run group transcript are kept."""

from bridge.store.base import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
