"""Events a run with the events inbox acknowledged and left behind (killed before they became turns), handed over
by a run that has no ingress of its own: Socket Mode, or `serve` with HTTP_EVENTS_INBOX off, on the same SQLite
database. Slack had its 200 for each and will not deliver it again, so they are made turns here as the ingress
would have (`arrivals.py`: in order per channel, tried again on Slack's schedule or once the store answers), each
row removed once handled. A stop before that leaves the rest in the inbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable

from bridge.arrivals import Arrivals, Dispatch, Ping
from bridge.config import Settings
from bridge.inbox import Arrival, Inbox, inbox_path, tighten_left
from bridge.inbox import waiting as inbox_waiting
from bridge.store.database_url import sqlite_path
from bridge.tasks import Tasks

log = logging.getLogger(__name__)


async def tighten_a_left_inbox(settings: Settings) -> str | None:
    """The inbox a run with it on left beside the database made 600, in a run that does not open it; its path."""
    if not settings.database_url.startswith("sqlite:"):
        return None
    path = inbox_path(sqlite_path(settings.database_url))
    await asyncio.to_thread(tighten_left, path)
    return path


class LeftInbox:
    def __init__(self, settings: Settings, dispatch: Dispatch, ping: Ping | None = None) -> None:
        self._settings = settings
        self._dispatch = dispatch
        self._ping = ping  # the store's: an event that failed while it did not answer goes again once it does
        self._inbox: Inbox | None = None
        self._arrivals: Arrivals | None = None
        self._writes = Tasks()
        self._lock = asyncio.Lock()  # the inbox's one connection, used from one worker thread at a time

    async def start(self) -> int:
        """Hand over what waits (opening the inbox only if something does); how many events that is."""
        path = await tighten_a_left_inbox(self._settings)
        if path is None or not await asyncio.to_thread(inbox_waiting, path):
            return 0
        inbox = Inbox(path)
        try:
            left = await asyncio.to_thread(inbox.open)
        except (OSError, ValueError, sqlite3.Error) as exc:  # not a reason not to start: the events stay there
            log.warning("events left in the inbox not handed over path=%s error=%s", path, exc)
            return 0
        self._inbox = inbox
        self._arrivals = Arrivals(self._dispatch, self._handled, self._failed, self._ping)
        for arrival in left:
            self._arrivals.arrive(arrival)
        log.info("events left in the inbox by the last run handed over count=%d", len(left))
        return len(left)

    def _handled(self, arrival: Arrival) -> None:
        self._write(lambda inbox, ids: inbox.remove(ids), [arrival.id])

    def _failed(self, arrival: Arrival) -> None:
        self._write(lambda inbox, ids: inbox.attempted(ids), [arrival.id])

    def _write(self, write: Callable[[Inbox, Iterable[int]], None], ids: list[int]) -> None:
        async def run() -> None:
            async with self._lock:
                if self._inbox is None:
                    return
                try:
                    await asyncio.to_thread(write, self._inbox, ids)
                except Exception as exc:  # the row stays: the next start hands it over again, deduplicated
                    log.warning("events inbox not updated error=%s", exc)

        self._writes.spawn(run(), "inbox update")

    async def stop(self, grace: float) -> None:
        """Wait `grace` for the events in hand; what is left stays in the inbox."""
        if self._arrivals is not None:
            await self._arrivals.stop(grace)
        await self._writes.stop(grace)
        async with self._lock:
            if self._inbox is not None:
                await asyncio.to_thread(self._inbox.close)
                self._inbox = None
