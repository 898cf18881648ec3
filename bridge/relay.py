"""Where the Slack side and the Letta side meet: accepting turns, ordering them, owning their tasks.

A mention is recorded in the store before Slack is acknowledged, queued behind earlier turns of the same
binding, and run by `turns.TurnWorker` in a task the relay owns. On start, turns a previous process left
unfinished are queued again; on stop, running turns get a grace period and are then cancelled, staying
recorded for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

from bridge.domain import Turn
from bridge.slack.post import SlackPoster, SlackPostError
from bridge.store.base import Store
from bridge.turns import Job, TurnWorker

log = logging.getLogger(__name__)

QUEUED = "Queued: I'll answer after the {count} earlier message{s} in this channel."


class RelayClosing(Exception):
    """The bridge is stopping; the request is refused (not acknowledged) so that Slack delivers it again."""


class Relay:
    def __init__(
        self,
        store: Store,
        worker: TurnWorker,
        poster: SlackPoster,
        max_concurrent: int,
        follow_ups_off: frozenset[str] = frozenset(),
    ) -> None:
        self._store = store
        self._follow_ups_off = follow_ups_off
        self._worker = worker
        self._poster = poster
        self._queues: dict[tuple[str, str], asyncio.Queue[Job]] = {}
        self._running: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._closing = False

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def accept(self, turn: Turn) -> None:
        """Record the turn durably and queue it; returns at once, long before Letta answers."""
        if self._closing:
            raise RelayClosing("stopping")
        if turn.follow_up and not await self._follows(turn):
            return
        otid = str(uuid.uuid4())
        turn_id = await self._store.accept_turn(turn, otid)
        if turn_id is None:
            log.info(
                "duplicate turn dropped event_id=%s channel=%s ts=%s", turn.event_id, turn.channel_id, turn.message_ts
            )
            return
        log.info("turn accepted turn_id=%s event_id=%s channel=%s", turn_id, turn.event_id, turn.channel_id)
        ahead = self._enqueue(Job(turn, turn_id, otid))
        if ahead:
            self.spawn(self._tell_queued(turn, ahead))

    async def _follows(self, turn: Turn) -> bool:
        """A thread reply without a mention is a turn only where the bot is already in the conversation."""
        if turn.channel_id in self._follow_ups_off:
            return False
        return await self._store.thread_answered(turn.team_id, turn.channel_id, turn.thread_ts)

    async def resume(self) -> int:
        """Queue the turns a previous process accepted but did not finish, oldest first."""
        pending = await self._store.unfinished_turns()
        for item in pending:
            self._enqueue(Job(item.turn, item.turn_id, item.otid, resumed=True))
        if pending:
            log.info("resuming unfinished turns count=%d", len(pending))
        return len(pending)

    def _enqueue(self, job: Job) -> int:
        """Queue the job for its binding; returns how many turns are ahead of it."""
        key = (job.turn.team_id, job.turn.channel_id)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self.spawn(self._drain(key, queue))
        ahead = queue.qsize() + self._running.get(key, 0)
        queue.put_nowait(job)
        return ahead

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in a task the relay tracks, so that stop() can drain or cancel it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: tuple[str, str], queue: asyncio.Queue[Job]) -> None:
        """One worker per binding: its turns run one at a time, in arrival order."""
        try:
            while not queue.empty():
                job = queue.get_nowait()
                self._running[key] = 1
                try:
                    async with self._slots:
                        await self._worker.run(job)
                except Exception:
                    log.exception("turn worker failed turn_id=%s", job.turn_id)
                finally:
                    self._running.pop(key, None)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _tell_queued(self, turn: Turn, ahead: int) -> None:
        text = QUEUED.format(count=ahead, s="" if ahead == 1 else "s")
        try:
            for part in self._poster.parts(None, text):
                await self._poster.post(turn.channel_id, turn.thread_ts, part)
        except SlackPostError:
            log.info("could not say the turn is queued channel=%s", turn.channel_id)

    async def stop(self, grace: float) -> None:
        """Stop taking work, let running turns finish within `grace` seconds, then cancel what is left.

        A cancelled turn stays recorded as running and is resumed by the next start.
        """
        self._closing = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.info("stopped with turns in flight, recorded for the next start count=%d", len(pending))
