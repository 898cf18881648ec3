"""Events the ingress recorded and acknowledged, handled on the main loop as Bolt would have before the ack.

Each event goes to Bolt in a task the bridge owns (its listeners decide, and record the turn in the store); then
its inbox row is removed. An attempt that fails (Bolt answers 5xx: the store did not take the turn) is made again
after a pause, up to MAX_ATTEMPTS in all counting the runs before, as Slack itself would have retried an event
it got a 500 for; then it is dropped with a log line. Stopping waits `grace` for the events in hand, then cancels
the rest: their rows stay, and the next start hands them over again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge.ids import request_id
from bridge.inbox import Arrival
from bridge.logs import log_context
from bridge.tasks import Tasks

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4  # Slack delivers an event once and retries it three times
PAUSES = (1.0, 60.0, 300.0)  # seconds before the second, third and fourth attempts (Slack: at once, 1 min, 5 min)

Dispatch = Callable[[AsyncBoltRequest], Awaitable[BoltResponse]]
Report = Callable[[Arrival], None]


class Arrivals:
    def __init__(self, dispatch: Dispatch, handled: Report, failed: Report) -> None:
        self._dispatch = dispatch
        self._handled = handled
        self._failed = failed
        self._tasks = Tasks()

    def __len__(self) -> int:
        return len(self._tasks)

    def arrive(self, arrival: Arrival) -> None:
        """Called on the main loop, in the order the events were recorded; once stopping, the row stays."""
        self._tasks.spawn(self._handle(arrival), "slack event")

    async def _handle(self, arrival: Arrival) -> None:
        with log_context(request_id=request_id()):
            for attempt in range(arrival.attempts + 1, MAX_ATTEMPTS + 1):
                if await self._attempt(arrival):
                    self._handled(arrival)
                    return
                self._failed(arrival)
                if attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(PAUSES[min(attempt, len(PAUSES)) - 1])
            log.error("slack event dropped after %d failed attempts inbox_id=%d", MAX_ATTEMPTS, arrival.id)
            self._handled(arrival)

    async def _attempt(self, arrival: Arrival) -> bool:
        try:
            # The gate checked the signature as the event arrived; Bolt must not check it again ("socket_mode"
            # skips only that), as an event handed over after a restart is older than Bolt's five minutes.
            request = AsyncBoltRequest(
                body=arrival.body.decode("utf-8"), headers=dict(arrival.headers), mode="socket_mode"
            )
            response = await self._dispatch(request)
        except Exception as exc:
            log.warning("slack event not handled inbox_id=%d error=%s", arrival.id, type(exc).__name__)
            return False
        if response.status >= 500:
            log.warning("slack event not handled inbox_id=%d status=%d", arrival.id, response.status)
            return False
        return True

    async def stop(self, grace: float) -> None:
        """Wait `grace` for the events in hand; the rest are cancelled and stay in the inbox."""
        await self._tasks.stop(grace)
