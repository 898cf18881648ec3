"""The retention pass: every hour (the first a little after start, out of the way of a start-up burst), finished
turns older than FINISHED_TURNS_DAYS go from the database with what they left, and then the bridge-run transcript's
rows as old that every agent has seen (store/retention.py), a small window at a time with a pause between windows,
so that neither Slack's acknowledgements nor running turns wait behind it; last, the rows of queue notices posted
as long ago that nothing ended (store/queue_notices.py: a crash left them, or their thread never moved). Several
processes on one database may prune at once: each delete is of rows nobody changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bridge.store.base import Store
from bridge.store.queue_notices import NoticeRows
from bridge.store.retention import Retention

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    first_after: float = 60.0  # seconds after start
    every: float = 3600.0
    pause: float = 0.05  # between two windows


@dataclass(frozen=True)
class PassResult:
    turns: int
    events: int
    transcript: int = 0


class Pruner:
    def __init__(self, store: Store, days: int, timing: Timing = Timing()) -> None:
        self._retention = Retention(store)
        self._notices = NoticeRows(store)
        self._days = days
        self._timing = timing
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Nothing with FINISHED_TURNS_DAYS=0 (keep everything)."""
        if self._days > 0 and self._task is None:
            self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> PassResult:
        """One whole pass: every window of turns, then the old event ids, the old transcript rows, the old queue
        notices' rows."""
        turns, after = 0, 0
        while True:
            window = await self._retention.prune_turns(self._days, after)
            turns += window.turns
            if window.after_id is None:
                break
            after = window.after_id
            await asyncio.sleep(self._timing.pause)
        events = 0
        while gone := await self._retention.prune_seen(self._days):
            events += gone
            await asyncio.sleep(self._timing.pause)
        transcript = await self._transcript()
        await self._notices.prune(self._days)
        if turns or events or transcript:
            log.info(
                "deleted finished turns older than %d days turns=%d event_ids=%d transcript_rows=%d",
                self._days,
                turns,
                events,
                transcript,
            )
        return PassResult(turns, events, transcript)

    async def _transcript(self) -> int:
        """Every window of old transcript rows; how many went."""
        rows, after = 0, None
        while True:
            window = await self._retention.prune_transcript(self._days, after)
            rows += window.rows
            if window.after is None:
                return rows
            after = window.after
            await asyncio.sleep(self._timing.pause)

    async def _forever(self) -> None:
        await asyncio.sleep(self._timing.first_after)
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("could not delete old finished turns error=%s", type(exc).__name__)
            await asyncio.sleep(self._timing.every)
