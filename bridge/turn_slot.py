"""A running turn's slot among MAX_CONCURRENT_TURNS (turn_runs.py takes it), which the turn lends out while it only
waits for people's decisions on tool calls (approvals.py), so that a card waiting for minutes does not stall every
other channel.

Lent only while every send of the turn in flight waits on a card: a broadcast whose other agent is still
answering keeps it. Taken back at once when a decision lets the turn go on, over the limit if every slot is taken
meanwhile: waiting for one there could wait on the very turn it lent its slot to (which may wait for an agent lock
this turn holds through its card, on the App Server), and would leave a card that says "Approved" with nothing
sent, a stop meanwhile denying what it showed approved.
"""

from __future__ import annotations

import asyncio


class Slot:
    """A turn's place among the MAX_CONCURRENT_TURNS running."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False
        self._over = False  # taken back over the limit: nothing to release when given back
        self.waiting = 0  # the turn's sends waiting on a card now

    async def take(self) -> None:
        await self._slots.acquire()
        self._held = True

    def give(self) -> None:
        if not self._held:  # lent out, or a take cancelled on the way: nothing to give
            return
        self._held = False
        if self._over:
            self._over = False
        else:
            self._slots.release()

    def lend(self, in_flight: int) -> None:
        """Lent out when each of the turn's `in_flight` sends waits on a card (called as a wait begins, and as a
        send of the turn is answered while a card waits)."""
        if self.waiting and self.waiting >= in_flight:
            self.give()

    async def back(self) -> None:
        """Taken back before the turn goes on: a free slot if there is one, else over the limit until the turn
        ends; never waited for."""
        if self._held:
            return
        if self._slots.locked():
            self._over = True
        else:
            await self._slots.acquire()  # free: returns at once
        self._held = True
