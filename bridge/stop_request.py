"""A person's request to stop a thread's (or a channel's) turns: who may (the asker, anyone, a configurer), then
the store marks them stopped, then the turns running here are stopped (stopping.TurnStops); what it did, for the
answer (and the threads where nothing else says it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.metrics import UNMETERED, Metrics
from bridge.store.base import PendingTurn, StoppedTurn, Store, ThreadKey

log = logging.getLogger(__name__)

StopBy = Literal["asker", "anyone"]


@dataclass(frozen=True)
class StopOutcome:
    """What a stop did: how many turns it stopped, or why it was refused (the rule in words)."""

    stopped: int = 0
    refused: str | None = None
    askers: tuple[str, ...] = ()
    stopping: bool = False  # nothing left to stop but a turn whose stop is still ending (its Letta runs cancelled)
    # Threads where only waiting turns were stopped and no queue notice, of any process, will say so (its notice
    # was not posted yet): the answer to the stop, in each, is all that says it.
    untold: tuple[str, ...] = ()


def stop_rule(by: StopBy, configurers: str) -> str:
    if by == "anyone":
        return "anyone in the channel"
    return f"the person who asked, or {configurers}"


class Stoppable(Protocol):
    """Whatever can stop a turn running in this process: one worker's `TurnStops`, or (OAuth mode) every
    workspace's, asked in turn."""

    async def stop(self, turn_id: int, by: str) -> bool: ...


class Stopping:
    """A request to stop a thread's (or a channel's) turns: who may, then the store, then the running turns."""

    def __init__(
        self,
        store: Store,
        stops: Stoppable,
        by: StopBy = "asker",
        metrics: Metrics = UNMETERED,
        waiting_stopped: Callable[[ThreadKey, bool], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._stops = stops
        self._by = by
        self._metrics = metrics
        # The queue notices: a thread's waiting turn was stopped (with its running one, which says so, when True);
        # True when a notice of the thread will say so.
        self._waiting_stopped = waiting_stopped

    async def first(self, key: str) -> bool:
        """Whether this copy of a stop event is the one to act on, in any process (see Store.first_stop)."""
        return await self._store.first_stop(key)

    async def anything_in(self, team_id: str, channel_id: str, thread_ts: str, besides: str = "") -> bool:
        """Whether the thread has a turn running or waiting: what a stop word would stop; with `besides` (a
        message's ts), one of another message than that one (a reply edited to a stop word has its own turn)."""
        if besides:
            turns = await self._store.unfinished_turns(team_id, channel_id)
            return any(p.turn.thread_ts == thread_ts and p.turn.message_ts != besides for p in turns)
        return thread_ts in await self._store.waiting_threads(team_id, channel_id)  # one row per thread, not turn

    async def request(
        self,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        user_id: str,
        may_configure: Callable[[], Awaitable[bool]],
        configurers: str = "people who may configure the channel",
    ) -> StopOutcome:
        """Stop the thread's running and queued turns (every thread of the channel when thread_ts is None) that
        `user_id` may stop: a thread's turns are the asker's to stop (the asker of its running, or first, turn),
        anyone's with SLACK_STOP_BY=anyone, and always a configurer's."""
        unfinished = [
            p
            for p in await self._store.unfinished_turns(team_id, channel_id)
            if thread_ts is None or p.turn.thread_ts == thread_ts
        ]
        pending = [p for p in unfinished if p.stopped_by is None]  # a turn stopping is stopped: its asker no longer
        if not pending:  # decides who may stop the thread
            return StopOutcome(stopping=bool(unfinished))
        threads: dict[str, PendingTurn] = {}
        for p in pending:
            threads.setdefault(p.turn.thread_ts, p)  # oldest first: the running one, or the next to run
        allowed = [t for t, p in threads.items() if self._by == "anyone" or p.turn.user_id == user_id]
        if len(allowed) < len(threads) and await may_configure():
            allowed = list(threads)
        if not allowed:
            askers = tuple(dict.fromkeys(p.turn.user_id for p in threads.values()))
            log.info("stop refused channel=%s thread=%s user=%s", channel_id, thread_ts, user_id)
            return StopOutcome(refused=stop_rule(self._by, configurers), askers=askers)
        stopped: list[StoppedTurn] = []
        untold: list[str] = []
        for thread in allowed:
            in_thread = await self._store.stop_turns(team_id, channel_id, thread, user_id)
            if any(waiting for _, waiting in in_thread):  # its queue notice, if one shows, says it will not come
                key = (team_id, channel_id, thread)
                running = not all(waiting for _, waiting in in_thread)  # it says "Stopped by …"
                noticed = self._waiting_stopped is not None and await self._waiting_stopped(key, running)
                if not noticed and not running:
                    untold.append(thread)
            stopped += in_thread
        for turn_id, waiting in stopped:
            if waiting:  # ended by this update, never run: counted here, once (no other process's update took it)
                self._metrics.turn_not_run("stopped")
            await self._stops.stop(turn_id, user_id)
        log.info("stop channel=%s thread=%s user=%s turns=%d", channel_id, thread_ts, user_id, len(stopped))
        return StopOutcome(len(stopped), untold=tuple(untold))
