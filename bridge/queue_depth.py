"""The queue depth gauge (`bridge_queue_depth`, per binding), kept off the turns' path: a count of a binding's
unfinished turns is read at most every DEPTH_EVERY seconds, beside the turn or mention it was read for, which never
waits for it; 0 as soon as the binding's queue is seen empty. A look inside the window is not dropped but leaves one
count due at its end, so that mentions piling up behind a long turn show within DEPTH_EVERY whatever their number.
Only a process that works the binding (holds its lease) counts it: its worker's empty look sets the gauge back to
0, where another process's would stay at the backlog it counted after the lease holder had run every turn."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable

from bridge.metrics import Metrics
from bridge.store.base import Store

log = logging.getLogger(__name__)

DEPTH_EVERY = 1.0  # seconds between two counts of a binding's queue for the depth gauge


class DepthGauge:
    def __init__(self, store: Store, metrics: Metrics, failing: Callable[[], bool]) -> None:
        self._store = store
        self._metrics = metrics
        self._failing = failing  # turns are being skipped after failures: an empty look is no empty queue
        self._at: dict[tuple[str, str], float] = {}
        self._counts: set[asyncio.Task[None]] = set()  # best effort, cancelled at stop
        self._due: dict[tuple[str, str], asyncio.TimerHandle] = {}  # one count at its window's end, per binding
        self._worked: set[tuple[str, str]] = set()  # bindings whose lease this process holds
        self._stopped = False

    def seen(self, key: tuple[str, str], empty: bool) -> None:
        """A worker looked at the binding's queue (`empty`: it found nothing left), or a mention joined it."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = self._at.get(key, -DEPTH_EVERY) + DEPTH_EVERY - now
        if not empty and wait > 0:
            if key not in self._due and not self._stopped:
                self._due[key] = loop.call_later(wait, self._due_now, key)
            return
        if (due := self._due.pop(key, None)) is not None:
            due.cancel()
        self._at[key] = now
        if empty and not self._failing():
            self._metrics.depth(f"{key[0]}:{key[1]}", 0)
        elif not self._stopped:
            task = asyncio.create_task(self._count(key, now), context=contextvars.Context())
            self._counts.add(task)
            task.add_done_callback(self._counts.discard)

    def works(self, key: tuple[str, str]) -> None:
        """This process's worker holds the binding's lease: the mentions it accepts for it are counted."""
        self._worked.add(key)

    def accepted(self, key: tuple[str, str]) -> None:
        """A mention joined the binding's queue: counted where this process works it (a set lookup otherwise)."""
        if key in self._worked:
            self.seen(key, empty=False)

    def let_go(self, key: tuple[str, str]) -> None:
        """This process no longer works the binding: a count still due would publish a depth it never takes back."""
        self._worked.discard(key)
        if (due := self._due.pop(key, None)) is not None:
            due.cancel()

    def _due_now(self, key: tuple[str, str]) -> None:
        """The window a look fell in has ended: count it now."""
        del self._due[key]
        self.seen(key, empty=False)

    async def _count(self, key: tuple[str, str], asked: float) -> None:
        try:
            depth = await self._store.count_unfinished(*key)
        except Exception as exc:  # the gauge keeps its last value; the worker meets the database's failure itself
            log.debug("could not count the queue binding=%s:%s error=%s", *key, type(exc).__name__)
            return
        if self._at.get(key) == asked:  # a later look (the queue seen empty) has not set it since
            self._metrics.depth(f"{key[0]}:{key[1]}", depth)

    async def stop(self) -> None:
        """No new count; those under way are cancelled (a stop never waits for the gauge)."""
        self._stopped = True
        for due in self._due.values():
            due.cancel()
        self._due.clear()
        for count in self._counts:
            count.cancel()
        await asyncio.gather(*self._counts, return_exceptions=True)
