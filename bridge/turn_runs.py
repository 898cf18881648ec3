"""One job a relay worker took, run to its end: a turn slot (MAX_CONCURRENT_TURNS) and a place among the turns
starting (`start_order.py`), runs made again after a crash (the database failing a moment) once the database
answers, or after Slack was down (posts it did not take past the poster's own tries) once Slack answers, and the
turn's end counted and logged.

A turn whose runs kept crashing is left for the next start (`failed`), and its binding goes on; one waiting for
Slack keeps its place however long Slack is down (a run made meanwhile would fail as well), and is left for the
next start only when the bridge stops. Its lines are the relay's (logger `bridge.relay`), as operators filter them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import replace

from bridge.logs import log_context
from bridge.metrics import Metrics
from bridge.post_order import PostOrder
from bridge.slack.failures import SlackAnswer, SlackPostError
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
SLACK_LOOK_EVERY = 5.0  # seconds between two auth.test calls to a Slack that does not answer
CLOSING_LOOK_EVERY = 0.5  # how soon a wait for Slack sees that the bridge stops
# Runs made again in a row that found Slack answering at once and still failed to post: then the turn's last run
# ends it failed as before (a message Slack keeps failing on, not an outage, must not hold its channel for ever).
PARTIAL_RUNS = 3
LEFT = "left"  # what `run` returns for a turn left waiting for Slack as the bridge stops: it ended nowhere


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
        """Run the job to its end (made again after a crash, or once Slack answers after it was down), then count
        it and log its one line; its status (LEFT: the bridge stopped while it waited for Slack)."""
        turn = job.turn
        with log_context(turn_id=job.turn_id, event_id=turn.event_id, channel=turn.channel_id, binding=":".join(key)):
            loop = asyncio.get_running_loop()
            started = loop.time()
            status = "crashed"
            pauses = iter((*CRASH_PAUSES, None))
            runs = 0  # failed runs; one Slack did not take posts in is none
            told = False  # the wait for Slack is said once a turn, not every run made again
            at_once = 0  # runs made again in a row whose wait found Slack answering at its first look
            while True:
                try:
                    status, started = await self._run_once(job)
                    break
                except Exception as exc:
                    if isinstance(exc, SlackPostError) and exc.unavailable:  # no failed run: Slack was down
                        if not told:
                            log.warning("turn not posted while Slack is down, to run again once it answers "
                                        "slack_error=%s", exc.error)
                        looked = await self._slack_answers(job.turn.team_id, told)
                        told = True
                        if looked is None:
                            log.info("turn waiting for Slack left for the next start turn_id=%s", job.turn_id)
                            return LEFT
                        answer, waited = looked
                        at_once = 0 if waited else at_once + 1
                        # Slack refuses the token, or answers at once each time and still takes none of the
                        # turn's posts (a message it fails on, not an outage): the next run is its last.
                        last = answer == "refuses" or at_once >= PARTIAL_RUNS
                        job = replace(job, resumed=True, order=PostOrder(), last_try=last)
                        continue
                    log.exception("turn worker failed turn_id=%s", job.turn_id)
                    runs += 1
                    pause = next(pauses)
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

    async def _run_once(self, job: Job) -> tuple[str, float]:
        """One run of the job in a slot and its place among the turns starting: its status, and when it started."""
        self._worker.expect(job)
        slot = Slot(self._slots)
        await slot.take()
        try:
            async with self._order.place() as place:
                started = asyncio.get_running_loop().time()
                return await self._worker.run(replace(job, place=place, slot=slot)), started
        finally:
            slot.give()

    async def _slack_answers(self, team_id: str, told: bool) -> tuple[SlackAnswer, bool] | None:
        """Wait while Slack does not answer (an incident): a run made meanwhile would fail as well. The turn keeps
        its place, the binding's next turns behind it; None when the bridge stops meanwhile: the turn, still
        running in the store, is resumed by the next start as any turn in flight. "refuses": Slack refuses the
        token, and the run made at once ends the turn failed. One Slack answered at once (auth.test fine, its posts
        still failing: a partial outage) is made again only after a look's wait, said once (`told`: not the
        turn's first wait), so that it cannot spin. With the answer, whether Slack did not answer at some look."""
        loop = asyncio.get_running_loop()
        waited_since: float | None = None  # said once when the wait starts, once when it ends: not every look
        while not self._closing():
            try:
                answer = await self._worker.slack_answers(team_id)
            except Exception:  # not Slack being down: the run made again says what it was
                answer = "answers"
            if answer == "refuses":
                log.error("Slack refuses the bridge's token (revoked, the app uninstalled): the turn waiting for Slack "
                          "runs once more, and ends failed if Slack still does not take its posts")
                return answer, waited_since is not None
            if answer == "answers" and waited_since is not None:
                log.info("Slack answers again, running the turn again waited_ms=%.0f",
                         (loop.time() - waited_since) * 1000)
                return answer, True
            if answer == "answers":  # at once: Slack answers, yet did not take the turn's posts
                if not told:
                    log.warning("Slack answers but did not take the turn's posts, running it again every %gs",
                                SLACK_LOOK_EVERY)
                return (answer, False) if await self._nap() else None
            if waited_since is None:
                waited_since = loop.time()
                log.warning("Slack does not answer, waiting to run the turn again")
            await self._nap()
        return None

    async def _nap(self) -> bool:
        """A look's wait (SLACK_LOOK_EVERY), cut short when the bridge stops: whether it did not."""
        step = min(CLOSING_LOOK_EVERY, SLACK_LOOK_EVERY)
        for _ in range(math.ceil(SLACK_LOOK_EVERY / step)):  # a stop is seen within a step, not a whole look
            if self._closing():
                return False
            await asyncio.sleep(step)
        return not self._closing()

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
