"""Which process runs a binding's turns when several share one database.

A process runs a binding's turns only while it holds the binding's lease. The lease is renewed every third of
its length while the worker runs; a process that dies stops renewing, and once the lease has expired another
process's sweep finds the binding's unfinished turns and resumes them. A worker whose lease was taken over (it
stalled past the expiry) is cancelled at its next renewal, so a binding's turns are never run by two processes.

A process that was frozen (a host pause, a blocked event loop) runs its worker's next step as soon as it thaws,
before its keeper has had a turn: so each step another process may repeat (a Slack post, a Letta send) first
asks `check_lease`, which stops the worker when the lease may have run out by this process's monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from bridge.logs import Throttled
from bridge.store.base import Store

log = logging.getLogger(__name__)
unrenewed = Throttled(log)


def process_owner() -> str:
    """This process's name on its leases: the dyno (or host), the pid, and a random part for restarts."""
    where = os.environ.get("DYNO") or socket.gethostname()
    return f"{where}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class HeldLease:
    """A lease as its holder's steps see it: when it was last known renewed, by the monotonic clock, which goes on
    while the process is frozen. Renewal times are those the request was sent at: the database's expiry is later."""

    def __init__(self, binding: str, owner: str, holder: asyncio.Task[object], renewed: float, give_up: float) -> None:
        self.binding = binding
        self.owner = owner
        self.holder = holder
        self.renewed = renewed
        self.give_up = give_up
        self.released = False

    def lost(self) -> bool:
        """True once no renewal is known for three quarters of the lease: another process may take it soon."""
        return not self.released and asyncio.get_running_loop().time() - self.renewed >= self.give_up

    def stop_holder(self) -> None:
        if self.holder.cancelling():
            return  # stopped already, by its keeper or by one of its steps
        log.warning(
            "lease lost binding=%s owner=%s: stopping its turns here, the process holding it resumes them",
            self.binding,
            self.owner,
        )
        self.holder.cancel()


_HELD: ContextVar[HeldLease | None] = ContextVar("held_lease", default=None)


def check_lease() -> None:
    """Before a step another process may repeat: raise CancelledError (and stop the worker) when the binding's
    lease this task runs under may have been lost. Outside a lease, or after its release, nothing happens."""
    lease = _HELD.get()
    if lease is not None and lease.lost():
        lease.stop_holder()
        raise asyncio.CancelledError


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
        asked = asyncio.get_running_loop().time()  # the lease runs until at least this + seconds
        async with asyncio.timeout(self.seconds / 4):  # TimeoutError: the worker stops, the sweep comes back
            claimed = await self._store.claim_binding(team_id, channel_id, self.owner, self.seconds)
        if not claimed:
            yield False
            return
        holder = asyncio.current_task()
        assert holder is not None
        lease = HeldLease(f"{team_id}:{channel_id}", self.owner, holder, asked, self.seconds * 0.75)
        token = _HELD.set(lease)  # the worker's steps, and the tasks it starts, check it (check_lease)
        keeper = asyncio.create_task(self._keep(team_id, channel_id, lease))
        try:
            yield True
        finally:
            lease.released = True
            _HELD.reset(token)
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                async with asyncio.timeout(self.seconds / 4):
                    await self._store.release_binding(team_id, channel_id, self.owner)
            except Exception as exc:  # it expires by itself
                log.warning("could not release a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__)

    async def _keep(self, team_id: str, channel_id: str, lease: HeldLease) -> None:
        """Renew every third of the lease. When renewals fail (the database is unreachable from here, or this
        process stalled), cancel the holder well before the lease can expire, so that it has stopped before
        another process may take the binding over."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, lease.renewed + self.seconds / 3 - loop.time()))
            sent = loop.time()
            kept: bool | None = None
            try:  # a sixth of the lease at most: one sent on a connection gone silent is tried again on another
                async with asyncio.timeout(max(0.05, min(self.seconds / 6, lease.renewed + lease.give_up - sent))):
                    kept = await self._store.renew_binding(team_id, channel_id, self.owner, self.seconds)
            except Exception as exc:
                # Every held binding retries each second in an outage: one line a minute for all of them.
                unrenewed.warning(
                    "renew", "could not renew a lease binding=%s:%s error=%s", team_id, channel_id, type(exc).__name__
                )
            if kept:
                lease.renewed = sent
                continue
            if kept is False or lease.lost():
                lease.stop_holder()
                return
            await asyncio.sleep(min(1.0, self.seconds / 10))  # retry a failed renewal soon, not at once
