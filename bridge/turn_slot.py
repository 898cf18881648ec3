"""A running turn's slot among MAX_CONCURRENT_TURNS (turn_runs.py takes it), which the turn gives back while it
only waits for a person's decision on a tool call (approvals.py), so that a card waiting for minutes does not stall
every other channel."""

from __future__ import annotations

import asyncio


class Slot:
    """A turn's place among the MAX_CONCURRENT_TURNS running: given back while the turn only waits for a person
    (a tool call's card), so that other channels' turns go on meanwhile, and taken again before it goes on."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self._held = True

    def give(self) -> None:
        if self._held:  # a take cancelled on the way back holds nothing to give
            self._held = False
            self._slots.release()

    async def back(self) -> None:
        """Taken again after a wait it was given back for."""
        if not self._held:
            await self.take()
