"""One asyncio lock per key, kept only while someone holds it or waits for it: keys come from an unbounded set
(agents, conversations, channels), so a map of every key ever seen would grow for as long as the process runs.
Waiters are served in the order they came (asyncio.Lock is first come, first served)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
