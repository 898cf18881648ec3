"""A turn asks its next agent while the last reply is still being posted; the thread still reads in order.

Posting a reply is a round trip to Slack (a few hundred milliseconds from a cloud region, more for a long reply
in several messages). The next agent never needs the reply posted, only written to the turn's outbox, so the
runner runs on in a task of its own while this one posts what the turn owes, oldest first. What the runner puts
in the thread itself (a reply's draft, an approval card) waits until everything owed before it has been posted,
so nothing overtakes an earlier reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class PostOrder:
    """One turn's count of what was owed and what has been posted of it."""

    def __init__(self) -> None:
        self._owed = 0
        self._posted = 0
        self._work = asyncio.Event()  # something was owed, or the runner ended
        self._progress = asyncio.Event()  # a pass of posting ended (replaced by a fresh one each time)

    def owed(self) -> None:
        """The runner wrote something more to the outbox."""
        self._owed += 1
        self._work.set()

    async def caught_up(self) -> None:
        """Return once everything owed so far has been posted (at once when nothing is being posted)."""
        target = self._owed
        while self._posted < target:
            await self._progress.wait()

    async def ask_while_posting(self, asking: Coroutine[Any, Any, T], post: Callable[[], Awaitable[None]]) -> T:
        """Run `asking` (the runner, calling `owed` after each write to the outbox) in a task of its own and
        `post` here whenever it owed more; returns its result once all it owed is posted. A failure to post
        cancels the runner; the runner's failure is raised after what it owed before failing is posted."""
        asker = asyncio.create_task(asking)
        asker.add_done_callback(lambda _: self._work.set())
        try:
            while True:
                await self._work.wait()
                self._work.clear()
                target = self._owed
                if target > self._posted:
                    await post()
                    self._posted = target
                    self._progress.set()
                    self._progress = asyncio.Event()
                if asker.done() and self._posted >= self._owed:
                    break
        finally:
            if not asker.done():
                asker.cancel()
                await asyncio.wait([asker])
            elif not asker.cancelled():
                asker.exception()  # retrieved here: a failure to post, raised instead, says more
        return asker.result()
