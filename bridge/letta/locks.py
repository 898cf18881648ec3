"""The bridge's own per-agent (and per-conversation) send locks; Letta locks nothing without Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class AgentLocks:
    """Letta runs two sends to one agent (or one conversation) at once and mixes their contexts, so the bridge
    never does. Keys are agent ids, or conversation ids for sends to a conversation: its own thread."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        # Sorted so that two group turns sharing agents cannot deadlock.
        ids = sorted(set(agent_ids))
        locks = [self._locks.setdefault(agent_id, asyncio.Lock()) for agent_id in ids]
        acquired: list[asyncio.Lock] = []
        try:
            for lock in locks:
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()
