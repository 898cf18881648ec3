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
                async with asyncio.timeout(self.seconds / 4):
                    await self._store.release_binding(team_id, channel_id, self.owner)
            except Exception as exc:  # it expires by itself
                log.warning("could not release a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__)

    async def _keep(self, team_id: str, channel_id: str, holder: asyncio.Task[object]) -> None:
        """Renew every third of the lease. When renewals fail (the database is unreachable from here, or this
        process stalled), cancel the holder well before the lease can expire, so that it has stopped before
        another process may take the binding over."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()  # the lease runs until at least this + seconds, by the database's clock
        give_up = self.seconds * 0.75
        while True:
            await asyncio.sleep(max(0.0, renewed + self.seconds / 3 - loop.time()))
            sent = loop.time()
            kept: bool | None = None
            try:
                async with asyncio.timeout(max(0.05, renewed + give_up - sent)):
                    kept = await self._store.renew_binding(team_id, channel_id, self.owner, self.seconds)
            except Exception as exc:
                log.warning("could not renew a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__)
            if kept:
                renewed = sent
                continue
            if kept is False or loop.time() - renewed >= give_up:
                log.warning(
                    "lease lost binding=%s:%s owner=%s: stopping its turns here, the process holding it resumes them",
                    team_id,
                    channel_id,
                    self.owner,
                )
                holder.cancel()
                return
            await asyncio.sleep(min(1.0, self.seconds / 10))  # retry a failed renewal soon, not at once
