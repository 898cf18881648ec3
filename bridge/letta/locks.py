"""The bridge's own per-agent (and per-conversation) send locks; Letta locks nothing without Redis.

A key is an agent id or a conversation id, and a conversation is made per Slack thread, so a lock is kept only
while someone holds it or waits for it: the map would otherwise grow with every thread the bridge has ever seen.
"""

from __future__ import annotations

import asyncio
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


class AgentLocks:
    """Letta runs two sends to one agent (or one conversation) at once and mixes their contexts, so the bridge
    never does. Keys are agent ids, or conversation ids for sends to a conversation: its own thread."""

    def __init__(self) -> None:
        self._locks = KeyedLocks()

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        # Sorted so that two group turns sharing agents cannot deadlock.
        async with AsyncExitStack() as stack:
            for agent_id in sorted(set(agent_ids)):
                await stack.enter_async_context(self._locks.hold(agent_id))
            yield
