"""One job a relay worker took, run to its end: a turn slot (MAX_CONCURRENT_TURNS) and a place among the turns
starting (`start_order.py`), runs made again after a crash (the database failing a moment) once the database
answers, and the turn's end counted and logged.

A turn whose runs kept crashing is left for the next start (`failed`), and its binding goes on. Its lines are the
relay's (logger `bridge.relay`), as operators filter them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from bridge.logs import log_context
from bridge.metrics import Metrics
from bridge.post_order import PostOrder
from bridge.start_order import StartOrder
from bridge.store.base import Store
from bridge.turn_slot import Slot
from bridge.turns import NOT_TAKEN, Job, TurnWorker

log = logging.getLogger("bridge.relay")

# A turn whose run raised (the database failed a moment, most often) is run again after these pauses, still first
# in its binding's line, as resumed, once the database answers; after the last it is left for the next start, and
# the binding goes on.
CRASH_PAUSES = (1.0, 5.0)
DATABASE_LOOK_EVERY = 1.0  # seconds between two pings of a database that does not answer


class TurnRuns:
    """The relay's runs of its jobs, at most `max_concurrent` at once."""

    def __init__(
        self, store: Store, worker: TurnWorker, metrics: Metrics, max_concurrent: int, closing: Callable[[], bool]
    ) -> None:
        self._store = store
        self._worker = worker
        self._metrics = metrics
        self._closing = closing  # the relay is stopping: no run is made again
        self._slots = asyncio.Semaphore(max_concurrent)
        self._order = StartOrder()  # within a slot, turns prepare a few at a time, first taken first
        self.failed: set[int] = set()  # turns whose runs kept crashing in this process: left for the next start

    async def run(self, key: tuple[str, str], job: Job, request_id: str) -> str:
        """Run the job to its end (made again after a crash), then count it and log its one line; its status."""
        turn = job.turn
        with log_context(turn_id=job.turn_id, event_id=turn.event_id, channel=turn.channel_id, binding=":".join(key)):
            loop = asyncio.get_running_loop()
            started = loop.time()
            status = "crashed"
            for runs, pause in enumerate((*CRASH_PAUSES, None), start=1):
                try:
                    self._worker.expect(job)
                    slot = Slot(self._slots)
                    await slot.take()
                    try:
                        async with self._order.place() as place:
                            started = loop.time()
                            job = replace(job, place=place, slot=slot)
                            status = await self._worker.run(job)
                    finally:
                        slot.give()
                    break
                except Exception:
                    log.exception("turn worker failed turn_id=%s", job.turn_id)
                if pause is None or self._closing():
                    log.error("turn left for the next start after %d failed runs turn_id=%s", runs, job.turn_id)
                    self.failed.add(job.turn_id)
                    break
                await asyncio.sleep(pause)
                await self._database_answers()
                # What the failed run sent or posted, its journal and outbox say; its count of posts starts anew.
                job = replace(job, resumed=True, order=PostOrder())
            seconds = loop.time() - started
            if status != NOT_TAKEN:  # one withdrawn or stopped while it waited: the update that ended it counted it
                self._metrics.turn_ended(status, seconds)
            extra = {"status": status, "duration_ms": round(seconds * 1000, 1), "resumed": job.resumed, **job.ran}
            if request_id:
                extra["request_id"] = request_id  # the Slack request that brought the turn, if it came here
            log.info("turn ended turn_id=%s", job.turn_id, extra=extra)
            return status

    async def _database_answers(self) -> None:
        """Wait while the database does not answer (Postgres restarting): a run made meanwhile would fail as well,
        and three such runs left the turn for the next start, a day away with one web process. An outage longer
        than the lease ends here: the lease keeper cancels this worker, and the sweep brings the turn back."""
        waited_since: float | None = None  # said once when the wait starts, once when it ends: not every look
        while not self._closing():
            try:
                await self._store.ping()
            except Exception as exc:
                if waited_since is None:
                    waited_since = asyncio.get_running_loop().time()
                    log.warning("the database does not answer, waiting to run the turn again error=%s",
                                type(exc).__name__)
                await asyncio.sleep(DATABASE_LOOK_EVERY)
                continue
            if waited_since is not None:
                waited = asyncio.get_running_loop().time() - waited_since
                log.info("the database answers again, running the turn again waited_ms=%.0f", waited * 1000)
            return
