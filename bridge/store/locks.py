"""A write lock where urgent holders go first: recording a new Slack event must not queue behind a turn's
bookkeeping, because Slack is waiting for its acknowledgement (the benchmarks showed exactly that queue)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class UrgentFirstLock:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._urgent = 0
        self._clear = asyncio.Event()
        self._clear.set()

    @asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        if urgent:
            self._urgent += 1
            self._clear.clear()
            try:
                await self._lock.acquire()
            finally:
                self._urgent -= 1
                if self._urgent == 0:
                    self._clear.set()
        else:
            while True:
                await self._clear.wait()
                await self._lock.acquire()
                if self._urgent == 0:
                    break
                self._lock.release()  # an urgent holder arrived while we queued: it goes first
        try:
            yield
        finally:
            self._lock.release()


class AckFirst:
    """Turns give way to Slack's acknowledgements: while a request is being answered, a turn about to take its
    next step (a post, a store write, its next agent) waits until none is. Acknowledgements and turns share one
    event loop, and a request's steps otherwise queue behind every turn's ready work."""

    def __init__(self) -> None:
        self._answering = 0
        self._clear = asyncio.Event()
        self._clear.set()

    @asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        self._answering += 1
        self._clear.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering == 0:
                self._clear.set()

    async def give_way(self) -> None:
        if self._answering:
            await self._clear.wait()
