"""Turns start a few at a time, in the order they were taken.

Under a burst (a start-up after an outage, an alert storm over many channels) every turn's preparation (its store
reads and writes, its names looked up, its group's record) otherwise interleaves with every other's: all of them
reach Letta at the end of the burst together, and all their answers come back at once, to be posted and the next
agents asked at once. Taking places in order, the first mentions reach Letta first and the answers come back
spread out (the bench's fan-out figure).

A turn holds its place from being taken until its first send to Letta is journaled (the send goes next), or until
its run ends, or for HOLD_SECONDS at most: one waiting on something slow before its send (an agent another turn
holds, Slack or Letta slow to answer) gives its place up instead of holding the others back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

AT_ONCE = 8  # turns preparing at once: enough to keep the process busy while some wait on a round trip
HOLD_SECONDS = 0.25  # a turn's preparation takes a few milliseconds; one that takes longer waits on something


class Place:
    """A turn's place among those starting; `leave` gives it up (again is nothing). One made with no order
    (a turn run outside the relay, in tests) holds nothing."""

    def __init__(self, free: asyncio.Semaphore | None = None, hold: float = HOLD_SECONDS) -> None:
        self._free = free
        self._timer = asyncio.get_running_loop().call_later(hold, self.leave) if free is not None else None

    @property
    def held(self) -> bool:
        return self._free is not None

    def leave(self) -> None:
        if self._free is None:
            return
        free, self._free = self._free, None
        if self._timer is not None:
            self._timer.cancel()
        free.release()


class StartOrder:
    """At most `at_once` places held; a turn waiting for one gets it in the order it asked (asyncio.Semaphore
    wakes its waiters first come, first served)."""

    def __init__(self, at_once: int = AT_ONCE, hold: float = HOLD_SECONDS) -> None:
        self._free = asyncio.Semaphore(at_once)
        self._hold = hold

    @asynccontextmanager
    async def place(self) -> AsyncIterator[Place]:
        await self._free.acquire()
        place = Place(self._free, self._hold)
        try:
            yield place
        finally:
            place.leave()
