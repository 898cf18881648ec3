"""Which process runs a binding's turns when several share one database.

A process runs a binding's turns only while it holds the binding's lease. The lease is renewed every third of
its length while the worker runs; a process that dies stops renewing, and once the lease has expired another
process's sweep finds the binding's unfinished turns and resumes them. A worker whose lease was taken over (it
stalled past the expiry) is cancelled at its next renewal, so a binding's turns are never run by two processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.store.base import Store

log = logging.getLogger(__name__)


def process_owner() -> str:
    """This process's name on its leases: the dyno (or host), the pid, and a random part for restarts."""
    where = os.environ.get("DYNO") or socket.gethostname()
    return f"{where}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BindingLeases:
    def __init__(self, store: Store, seconds: float, owner: str | None = None) -> None:
        self._store = store
        self.seconds = seconds
        self.owner = owner or process_owner()

    @property
    def sweep_interval(self) -> float:
        """How often a process looks for orphaned bindings and renews what it holds."""
        return min(self.seconds / 3, 5.0)

    @asynccontextmanager
    async def hold(self, team_id: str, channel_id: str) -> AsyncIterator[bool]:
        """Yields True while this process holds the binding's lease, False (at once) when another does."""
        if not await self._store.claim_binding(team_id, channel_id, self.owner, self.seconds):
            yield False
            return
        holder = asyncio.current_task()
        assert holder is not None
        keeper = asyncio.create_task(self._keep(team_id, channel_id, holder))
        try:
            yield True
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                await self._store.release_binding(team_id, channel_id, self.owner)
            except Exception as exc:  # it expires by itself
                log.warning("could not release a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__)

    async def _keep(self, team_id: str, channel_id: str, holder: asyncio.Task[object]) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                kept: bool | None = await self._store.renew_binding(team_id, channel_id, self.owner, self.seconds)
            except Exception as exc:
                kept = None
                log.warning("could not renew a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__)
            if kept:
                renewed = loop.time()
                continue
            if kept is False or loop.time() - renewed > self.seconds * 0.8:
                log.warning(
                    "lease lost binding=%s:%s owner=%s: stopping its turns here, the process holding it resumes them",
                    team_id,
                    channel_id,
                    self.owner,
                )
                holder.cancel()
                return
