"""bridge/serve.py: what starting does besides the Bridge's own start (the heap set aside from full collections)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, cast

from bridge.app import Bridge
from bridge.serve import _started


class Started:
    ready = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


def test_what_start_built_is_set_aside_from_full_collections() -> None:
    gc.unfreeze()
    bridge = Started()
    kept: list[Any] = []

    async def main() -> None:
        async with _started(cast(Bridge, bridge)):
            kept.append(gc.get_freeze_count())

    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()  # the test process goes on collecting as before
    assert bridge.calls == ["start", "stop"]
    assert kept[0] > 1000  # the interpreter's modules and the test's own objects at least
