"""The bridge's own per-agent (and per-conversation) send locks; Letta locks nothing without Redis.

A key is an agent id or a conversation id, and a conversation is made per Slack thread, so a lock is kept only
while someone holds it or waits for it: the map would otherwise grow with every thread the bridge has ever seen.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding it or waiting for it


class KeyedLocks:
    """One lock per key, made on first use and dropped when its last user leaves. Counting and dropping happen
    between awaits, so a user arriving after the drop makes a fresh lock that nobody else can hold: mutual
    exclusion per key holds however the entries come and go."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[key]


QUIET_KEPT = 10_000  # keys remembered as quiet; one forgotten costs a look at its runs before its next send


class AgentLocks:
    """Letta runs two sends to one agent (or one conversation) at once and mixes their contexts, so the bridge
    never does. Keys are agent ids, or conversation ids for sends to a conversation: its own thread.

    A lock keeps this process's sends apart, not a send an earlier process made (killed mid-send, or stopped past
    its grace) nor one of this process's own that was cut short: Letta runs those to their end. A key is `quiet`
    once a send of this process under it ended; any other key may still have such a run going, which the Letta
    client waits out before it sends (`LettaClient._one_send`)."""

    def __init__(self) -> None:
        self._locks = KeyedLocks()
        self._quiet: OrderedDict[str, None] = OrderedDict()

    def unsure(self, keys: Iterable[str]) -> list[str]:
        """The keys under which a run this process did not see end may still be going."""
        return [key for key in keys if key not in self._quiet]

    def quiet(self, key: str) -> None:
        """A send under `key` ended here, or `key` is a conversation this process made: no run is left going."""
        self._quiet[key] = None
        self._quiet.move_to_end(key)
        while len(self._quiet) > QUIET_KEPT:
            self._quiet.popitem(last=False)

    def go_on(self) -> None:
        """Called before a send made after a wait under the lock (the runs of an earlier send, a busy conversation
        or a 429 waited out): nothing here; the bridge's locks stop a worker whose lease may have been lost
        meanwhile (clients.py)."""

    def unsettle(self, key: str) -> None:
        """A send under `key` was cut short (or another process's was taken over): its run may still be going."""
        self._quiet.pop(key, None)

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        # Sorted so that two group turns sharing agents cannot deadlock.
        async with AsyncExitStack() as stack:
            for agent_id in sorted(set(agent_ids)):
                await stack.enter_async_context(self._locks.hold(agent_id))
            yield
