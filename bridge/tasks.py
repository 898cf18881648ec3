"""Background work the bridge owns (a command's Letta lookups after Slack's ack), so that stop can wait for it.

A task that fails is logged, never lost silently; a task spawned while stopping is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
RESTARTING = "The bridge is restarting; try again in a minute."  # to a person whose command or press was refused


class Tasks:
    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._closed = False

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, work: Coroutine[Any, Any, None], name: str, while_stopping: bool = False) -> bool:
        """Run `work` in a tracked task; False (and `work` closed unrun) once stopping has begun. A person's press
        (`while_stopping`: a Stop, a tool decision) is still taken while the turns it is about have their grace,
        until `close`: it is short, and refused it would be lost, Slack having had its acknowledgement."""
        if self._closed or (self._stopping and not while_stopping):
            work.close()
            log.warning("background work refused while stopping name=%s", name)
            return False
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed name=%s", task.get_name(), exc_info=task.exception())

    async def stop(self, grace: float) -> None:
        """Refuse new work (but presses), give what runs `grace` seconds, then cancel the rest and wait for it to
        unwind."""
        self._stopping = True
        deadline = asyncio.get_running_loop().time() + grace
        while self._running and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(set(self._running), timeout=left)  # a press taken meanwhile is waited for too
        late = set(self._running)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def close(self, grace: float) -> None:
        """Refuse every press too (the turns they are about have ended), and finish what runs as `stop` does."""
        self._closed = True
        await self.stop(grace)


async def unless_ended(waiting: Awaitable[T], ended: Callable[[], Awaitable[None]] | None) -> T | None:
    """What `waiting` gives, or None once `ended` returns first (`waiting` is then cancelled)."""
    if ended is None:
        return await waiting
    wait, end = asyncio.ensure_future(waiting), asyncio.ensure_future(ended())
    try:
        await asyncio.wait((wait, end), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wait, end):
            if not task.done():
                task.cancel()
        await asyncio.wait((wait, end))
    if not end.cancelled():
        end.exception()  # read, whatever it is: `waiting` decides what comes back
    return None if wait.cancelled() else wait.result()
