"""Events the ingress recorded and acknowledged, handled on the main loop as Bolt would have before the ack.

Each event goes to Bolt in a task the bridge owns (its listeners decide, and record the turn in the store); then
its inbox row is removed. Events of one channel go to Bolt one after another, in the order they were recorded
(the order Slack was answered 200 in): a follow-up's listener reads the store before it records its turn, where
a mention's does not, so side by side a mention acknowledged later could become the earlier turn. An attempt that
fails (Bolt answers 5xx: the store did not take the turn) is made again after a pause, as Slack itself would have
retried an event it got a 500 for, and then every last pause for as long as it fails: Slack got its 200 and will
not deliver it again, so the inbox keeps it (a full disk, a database down for minutes) and the log names it. While
the store does not answer (a `sqlite3` shell left in a transaction, Postgres restarting) the event waits for it,
not for Slack's schedule, and is tried again as soon as it answers: one ping loop for all the events waiting, said
once when it starts and once when it ends. The channel's later events wait while it is tried again (a deletion
must not overtake the message it deletes), and go on past it.
Stopping waits `grace` for the events in hand, then cancels the rest: their rows stay, and the next start hands
them over again.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge.ids import request_id
from bridge.inbox import Arrival
from bridge.logs import log_context
from bridge.tasks import Tasks

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4  # Slack delivers an event once and retries it three times; past that, the log says so each time
PAUSES = (1.0, 60.0, 300.0)  # seconds before the second, third and fourth attempts (Slack: at once, 1 min, 5 min)
STORE_LOOK_EVERY = 1.0  # seconds from a failed ping to the next (a ping itself may wait: 2 s for the SQLite lock)

Dispatch = Callable[[AsyncBoltRequest], Awaitable[BoltResponse]]
Report = Callable[[Arrival], None]
Ping = Callable[[], Awaitable[None]]  # the store's ping: raises while it cannot take a turn


class Arrivals:
    def __init__(self, dispatch: Dispatch, handled: Report, failed: Report, ping: Ping | None = None) -> None:
        self._dispatch = dispatch
        self._handled = handled
        self._failed = failed
        self._ping = ping
        self._looking: asyncio.Task[bool] | None = None  # the one ping loop every failed event waits on
        self._tasks = Tasks()
        # Per channel, the newest event's being handled, which the channel's next event waits for (while it is tried
        # again too: a deletion must not overtake the message it deletes), up to Slack's own retry schedule.
        self._last: dict[tuple[str, str], asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def arrive(self, arrival: Arrival) -> None:
        """Called on the main loop, in the order the events were recorded; once stopping, the row stays."""
        where = _channel_of(arrival.body)
        before = self._last.get(where) if where is not None else None
        done = asyncio.Event()
        if where is not None:
            self._last[where] = done
        self._tasks.spawn(self._handle(arrival, where, before, done), "slack event")

    async def _handle(
        self, arrival: Arrival, where: tuple[str, str] | None, before: asyncio.Event | None, done: asyncio.Event
    ) -> None:
        def go_on() -> None:
            """The channel's next event may go to Bolt."""
            done.set()
            if where is not None and self._last.get(where) is done:
                del self._last[where]

        with log_context(request_id=request_id()):
            try:
                if before is not None:
                    await before.wait()
                attempt = arrival.attempts + 1
                handled = await self._attempt(arrival)
                while not handled:
                    self._failed(arrival)
                    if attempt >= MAX_ATTEMPTS:
                        go_on()  # past Slack's own schedule: the channel's later events do not wait on it for good
                        log.error(
                            "slack event still not made a turn after %d attempts: kept in the inbox, tried again %s"
                            " inbox_id=%d %s", attempt, self._when_again(), arrival.id, _named(arrival.body),
                        )
                    await self._before_again(attempt)
                    attempt += 1
                    handled = await self._attempt(arrival)
                go_on()
                self._handled(arrival)
            finally:
                go_on()

    def _when_again(self) -> str:
        """The wait `_before_again` makes past Slack's schedule, as the log says it: which applies is known only
        once the store is asked."""
        pause = f"in {PAUSES[-1]:.0f}s"
        return pause if self._ping is None else f"as soon as the database answers, else {pause}"

    async def _before_again(self, attempt: int) -> None:
        """Until the next attempt: while the store does not answer, until it does (a later event of the channel must
        not wait a minute behind a lock released long since); when it answers, Slack's own pause."""
        if self._ping is not None:
            if self._looking is None or self._looking.done():
                self._looking = asyncio.create_task(self._store_answers(), context=contextvars.Context())
            if await asyncio.shield(self._looking):
                return
        await asyncio.sleep(PAUSES[min(attempt, len(PAUSES)) - 1])

    async def _store_answers(self) -> bool:
        """Ping the store until it answers; whether it had to wait. One loop serves every waiting event."""
        assert self._ping is not None
        loop = asyncio.get_running_loop()
        waited_since: float | None = None
        while True:
            try:
                await self._ping()
            except Exception as exc:
                if waited_since is None:
                    waited_since = loop.time()
                    log.warning("the database does not answer: acknowledged events wait in the inbox until it does"
                                " error=%s", type(exc).__name__)
                await asyncio.sleep(STORE_LOOK_EVERY)
                continue
            if waited_since is not None:
                log.info("the database answers again, handing the waiting events over waited_ms=%.0f",
                         (loop.time() - waited_since) * 1000)
            return waited_since is not None

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
        if self._looking is not None:
            self._looking.cancel()
            await asyncio.gather(self._looking, return_exceptions=True)


def _event(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}, {}
    if not isinstance(payload, dict):
        return {}, {}
    event = payload.get("event")
    return payload, event if isinstance(event, dict) else {}


def _channel_of(body: bytes) -> tuple[str, str] | None:
    """The (workspace, channel) an event happened in, whose events keep their order; None for one of no channel."""
    payload, event = _event(body)
    channel = event.get("channel")
    return (str(payload.get("team_id") or ""), channel) if isinstance(channel, str) and channel else None


def _named(body: bytes) -> str:
    """The event as the log names it: its id, channel and message ts (never its words)."""
    payload, event = _event(body)
    return (
        f"event_id={payload.get('event_id', '')} channel={event.get('channel', '')}"
        f" ts={event.get('ts') or event.get('event_ts') or ''}"
    )
