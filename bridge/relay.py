"""Where the Slack side and the Letta side meet: accepting turns, ordering them, owning their tasks.

A mention is recorded in the store before Slack is acknowledged, and run by `turns.TurnWorker` in a task the
relay owns. The store is the queue: a binding's worker takes its unfinished turns from the store, oldest
first, one at a time, and only while this process holds the binding's lease, so that several processes sharing
one database run each binding's turns once and in order. The worker asks the store for the next turn only (one
indexed row), never for the whole queue, so a backlog of any length costs each turn the same. A turn accepted
here for a binding another process holds is left to that process. Where a binding's threads are Letta
conversations (`threads.py`), its turns are ordered per thread instead: each thread's turns one at a time,
different threads at once, all under the binding's lease. On start, and every few seconds, bindings whose
process stopped or died are taken over; on stop, running turns get a grace period and are then cancelled,
staying recorded for the next start. Each turn a worker takes is run by `turn_runs.TurnRuns` (its slot, its runs
made again after a crash, its end counted and logged).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from bridge.domain import Turn
from bridge.ids import otid as new_otid
from bridge.logs import Throttled, logged
from bridge.message_changes import MessageChanges
from bridge.metrics import UNMETERED, Metrics
from bridge.notices import QueueNotices
from bridge.queue_depth import DepthGauge
from bridge.slack.post import SlackPoster
from bridge.store.base import Store
from bridge.store.leases import BindingLeases
from bridge.store.slack_changes import move_after_turn, move_channel_running
from bridge.turn_runs import TurnRuns
from bridge.turns import Job, TurnWorker

log = logging.getLogger(__name__)
unswept = Throttled(log)  # the sweep runs every few seconds: in an outage, a line a minute

FRESH_KEPT = 10_000
# While a binding's threads run at once, its waiting threads are read again this often: a mention that reached
# another process (several share a Postgres database) cannot nudge this one, which holds the binding.
THREADS_LOOK_EVERY = 2.0
CANCELLED_WAIT = 1.0  # seconds a turn cancelled at the end of the shutdown grace gets to end


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
        leases: BindingLeases | None = None,
        metrics: Metrics = UNMETERED,
        default_applies: Callable[[str], bool] = lambda _channel: False,
    ) -> None:
        self._store = store
        self._follow_ups_off = follow_ups_off
        self._default_applies = default_applies  # an unbound channel's turns go to the default target
        self._worker = worker
        self._poster = poster
        self._leases = leases or BindingLeases(store, 30.0)
        self._metrics = metrics
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        # A channel moved while its turn ran here under the old id: its new id's worker waits for this task (where
        # threads run at once, only the threads in _held do: those with a turn running under the old id).
        self._moving: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._held: dict[tuple[str, str], frozenset[str]] = {}
        self._thread_tasks: dict[tuple[str, str], dict[str, asyncio.Task[None]]] = {}  # a threaded worker's threads
        self._parallel: dict[tuple[str, str], bool] = {}  # whether a worker holding the lease runs threads at once
        self._again: set[tuple[str, str]] = set()  # a worker must look at the store once more before it stops
        self._nudges: dict[tuple[str, str], asyncio.Event] = {}  # a threaded worker waits on it for new turns
        self._thread_wakes: dict[tuple[str, str], dict[str, None]] = {}  # threads a threaded worker must look at
        self._fresh: dict[str, str] = {}  # otid of a turn accepted here, not yet started -> the request that brought it
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._runs = TurnRuns(store, worker, metrics, max_concurrent, lambda: self._closing)
        self._depth = DepthGauge(store, metrics, lambda: bool(self._runs.failed))
        self.notices = QueueNotices(
            store, self._poster_of, self._in_parallel, lambda: self._runs.failed, self._held_back
        )
        # A message deleted or edited in Slack: its waiting turn withdrawn or given the new words, or, before its
        # mention was accepted, remembered for the mention's retry.
        self._changes = MessageChanges(store, metrics, self.notices, self.not_followed)
        self.withdraw = self._changes.withdraw
        self.edit = self._changes.edit
        self.edited_away = self._changes.edited_away
        self._closing = False

    @property
    def worker(self) -> TurnWorker:
        return self._worker

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def accept(self, turn: Turn) -> None:
        """Record the turn durably and wake its binding's worker; returns at once, long before Letta answers."""
        if self._closing:
            raise RelayClosing("stopping")
        if turn.follow_up and (why := await self.not_followed(turn.team_id, turn.channel_id, turn.thread_ts)):
            log.info("slack event ignored type=message event_id=%s reason=%s", turn.event_id, why)
            return
        started = asyncio.get_running_loop().time()
        if (now := self._changes.before_accept(turn)) is None:  # deleted (or edited to nothing) before it came
            return
        turn, early = now
        otid = new_otid()
        # Known fresh before it is stored: a worker already running for the binding can take the turn as soon as
        # its row is committed, before this coroutine runs again.
        self._fresh[otid] = str(logged("request_id") or "")
        if len(self._fresh) > FRESH_KEPT:  # turns another process ran are never popped here
            del self._fresh[next(iter(self._fresh))]
        try:
            turn_id = await self._store.accept_turn(turn, otid)
        except TimeoutError:  # its row may be committed after all (a slow database): known fresh, as it is
            raise
        except BaseException:
            self._fresh.pop(otid, None)
            raise
        self._metrics.event(duplicate=turn_id is None)
        fields = {
            "event_id": turn.event_id,
            "channel": turn.channel_id,
            "binding": f"{turn.team_id}:{turn.channel_id}",
            "duration_ms": round((asyncio.get_running_loop().time() - started) * 1000, 1),
        }
        if turn_id is None:
            self._fresh.pop(otid, None)
            log.info("duplicate event dropped ts=%s", turn.message_ts, extra=fields)
            self._wake((turn.team_id, turn.channel_id), turn.thread_ts)  # an earlier delivery's row, committed late
            return
        log.info("event accepted turn_id=%s", turn_id, extra=fields)
        if early is not None:
            await self._changes.after_accept(turn, early)
        log.debug("event text turn_id=%s text=%r", turn_id, turn.text)
        self._wake((turn.team_id, turn.channel_id), turn.thread_ts)
        self._depth.accepted((turn.team_id, turn.channel_id))  # counted at most once a second, not here
        # The turn may wait: behind this process's worker, or behind another process's, which holds the binding's
        # lease (Postgres) and whose queue notices never see this turn. Counted from the store: a turn first in
        # line gets none.
        self.notices.waiting(turn)

    async def channel_moved(self, team_id: str, old: str, new: str) -> None:
        """Slack changed the channel's id for good (a private channel shared through Slack Connect): its binding,
        threads and waiting turns go on under the new id. While a turn of it runs here under the old id, the new
        id's worker keeps back what would run beside it (every turn; where threads run at once, that turn's
        thread's) until it has ended and what it wrote meanwhile has followed the channel. The worker holds the
        new id's lease all along, so that no other process starts those turns either."""
        key, was = (team_id, new), (team_id, old)
        # Claimed before the move: another process's sweep must not find the new id's turns free in between.
        await self._store.claim_binding(team_id, new, self._leases.owner, self._leases.seconds)
        running = await move_channel_running(self._store, team_id, old, new)
        self.notices.moved(team_id, old, new)  # its queue notices, as the store's rows just did
        # and the threads whose turn its worker here has taken and not yet marked running (waiting for a slot)
        busy = {t for t, task in self._thread_tasks.get(was, {}).items() if not task.done()}
        moved = running is not None
        log.info("channel id changed old=%s new=%s moved=%s", old, new, moved, extra={"channel": new})
        # `ahead`: its worker under the old id, and the wait of an earlier move of it
        ahead = {t for t in (self._workers.get(was), self._moving.get(was)) if t is not None and not t.done()}
        if running is not None and ahead:
            self._held[key] = running | busy | self._held.get(was, frozenset())
            self._moving[key] = self.spawn(self._after_turn(team_id, old, new, ahead))
        self._wake(key)  # its waiting turns, if any, now under the new id

    async def _in_parallel(self, team_id: str, channel_id: str) -> bool:
        """For the queue notices: how the binding's worker runs its turns now, asked of the threads' policy only
        while no worker holds the binding (a lookup may answer otherwise than the worker's did, and a notice
        counting only its thread would tell nothing of a wait behind the whole channel)."""
        running = self._parallel.get((team_id, channel_id))
        return await self._worker.threads.in_parallel(team_id, channel_id) if running is None else running

    def _held_back(self, team_id: str, channel_id: str) -> frozenset[str] | None:
        """The threads the channel's new id keeps back for a turn still running under its old id; None when none."""
        key = (team_id, channel_id)
        return self._held.get(key, frozenset()) if key in self._moving else None

    async def _after_turn(self, team_id: str, old: str, new: str, ahead: set[asyncio.Task[None]]) -> None:
        """Once `ahead` has ended, move what the channel's turn wrote under `old`, then let the new id's worker run
        what it kept back. Cancelled by a stop: the next start runs the waiting turns."""
        key = (team_id, new)
        try:
            await asyncio.wait(ahead)
            await move_after_turn(self._store, team_id, old, new)
        except Exception as exc:  # the database failed: the running turn's writes stay under the old id
            log.warning("could not move a turn's writes old=%s new=%s error=%s", old, new, type(exc).__name__)
        finally:
            self._moving.pop(key, None)
            held = self._held.pop(key, frozenset())
        for thread_ts in held:
            self._wake(key, thread_ts)
        self._wake(key)

    async def not_followed(self, team_id: str, channel_id: str, thread_ts: str, besides: str = "") -> str | None:
        """Why a thread reply without a mention is not a turn (nor a stop), or None when it is: only where the bot
        is already in the conversation, and something would answer it (in a channel disconnected since, it asked
        nobody: no 'not connected' notice)."""
        if channel_id in self._follow_ups_off:
            return "follow_ups_off_here"
        if not await self._store.thread_answered(team_id, channel_id, thread_ts, besides):
            return "not_the_bots_thread"
        if self._default_applies(channel_id) or await self._store.get_binding(team_id, channel_id) is not None:
            return None
        return "not_connected"

    async def resume(self) -> int:
        """Take over the bindings a previous process left with unfinished turns, then keep looking for more."""
        pending = await self._store.count_unfinished()
        await self.notices.resume()  # before any turn starts: a turn that goes to its agents leaves its notice be
        await self._sweep()
        if pending:
            log.info("resuming unfinished turns count=%d", pending)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), context=contextvars.Context())
        return pending

    async def _sweep(self) -> None:
        for key in await self._store.orphaned_bindings():
            self._wake(key)

    async def _sweep_forever(self) -> None:
        """Every few seconds: bindings whose process died (its lease expired) are taken over here."""
        while True:
            await asyncio.sleep(self._leases.sweep_interval)
            try:
                await self._sweep()
            except Exception as exc:
                unswept.warning("sweep", "could not look for orphaned turns error=%s", type(exc).__name__)

    def _wake(self, key: tuple[str, str], thread_ts: str | None = None) -> bool:
        """Make sure a worker looks at the binding's unfinished turns (at `thread_ts`'s, when it runs threads).
        True when the binding's worker was already at work."""
        running = self._workers.get(key)
        if running is not None and not running.done():
            self._again.add(key)  # it looks at the store once more before it stops
            if key in self._nudges:
                if thread_ts is not None and key in self._thread_wakes:
                    self._thread_wakes[key][thread_ts] = None
                self._nudges[key].set()
            return True
        if not self._closing:
            task = self._workers[key] = self.spawn(self._work(key))
            task.add_done_callback(functools.partial(self._forget, key))
        return False

    def _forget(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._workers.get(key) is task:
            del self._workers[key]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a coroutine in a task the relay tracks, so that stop() can drain or cancel it."""
        task = asyncio.create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _work(self, key: tuple[str, str]) -> None:
        """One worker per binding: while this process holds the binding's lease, its turns run one at a time,
        oldest first. After letting the lease go it looks once more, for a turn accepted meanwhile."""
        try:
            await self._work_binding(key)
        except Exception as exc:  # the database failed: the turns stay recorded, and the sweep comes back for them
            log.warning("binding worker stopped binding=%s:%s error=%s", *key, type(exc).__name__)

    async def _work_binding(self, key: tuple[str, str]) -> None:
        while not self._closing:
            self._again.discard(key)
            async with self._leases.hold(*key) as held:
                if not held:
                    return  # another process runs this binding; it will find the turn in the store
                self._depth.works(key)
                try:
                    parallel = self._parallel[key] = await self._worker.threads.in_parallel(*key)
                    moving = self._moving.get(key)
                    if moving is not None and not parallel:  # the channel's turn under its old id runs: after it
                        await asyncio.wait({moving})
                    while not self._closing:
                        if not parallel:
                            if not await self._run_next(key):
                                break
                            # Asked again after each turn (its lookups are cached): a passing Letta failure made
                            # the pass in order, and the DM's next threads would wait behind each other all along.
                            parallel = self._parallel[key] = await self._worker.threads.in_parallel(*key)
                            continue
                        await self._run_threads(key)
                        # A turn committed as the threads' loop ended: its thread runs at once with any other's.
                        if await self._next(key) is None:
                            break
                finally:
                    self._parallel.pop(key, None)
                    self._depth.let_go(key)
            # Read after the query: a turn accepted while it ran has set _again, even if the query missed it. No
            # count for the gauge (DepthGauge.let_go): another process may run what this look finds.
            if await self._store.next_turn(*key, None, skip=self._runs.failed) is None and key not in self._again:
                return

    async def _next(self, key: tuple[str, str], thread_ts: str | None = None) -> Job | None:
        """The binding's (the thread's) oldest unfinished turn, as one indexed row; None when there is none."""
        pending = await self._store.next_turn(*key, thread_ts, skip=self._runs.failed)
        self._depth.seen(key, empty=pending is None and thread_ts is None)
        if pending is None:
            return None
        # A turn accepted here and never marked running cannot have sent or posted anything; any other may have.
        resumed = pending.started or pending.otid not in self._fresh
        return Job(
            pending.turn, pending.turn_id, pending.otid, resumed, pending.stopped_by, started=pending.started
        )

    async def _run_threads(self, key: tuple[str, str]) -> None:
        """Each thread's turns in order, different threads at the same time, until none is left (or the bridge
        stops: running turns finish, no new one starts). A turn accepted meanwhile nudges it to look at its
        thread; the binding's waiting threads are read from the store when it starts, then every THREADS_LOOK_EVERY
        (for the turns other processes accepted)."""
        nudge = self._nudges[key] = asyncio.Event()
        wanted = self._thread_wakes[key] = {}
        again: set[str] = set()  # threads whose task must look once more before it stops
        threads = self._thread_tasks[key] = {}
        loop = asyncio.get_running_loop()
        try:
            for thread_ts in await self._store.waiting_threads(*key):
                wanted[thread_ts] = None
            looked = loop.time()
            while True:
                nudge.clear()
                if not self._closing:
                    held = self._held.get(key, frozenset())  # the move's task wakes them once their turn ended
                    for thread_ts in list(wanted):
                        if thread_ts in held:
                            continue
                        running = threads.get(thread_ts)
                        if running is None or running.done():
                            threads[thread_ts] = asyncio.create_task(self._run_thread(key, thread_ts, again))
                        else:
                            again.add(thread_ts)
                wanted.clear()
                for thread_ts in [t for t, task in threads.items() if task.done()]:
                    del threads[thread_ts]
                if not threads and key not in self._moving:  # while held threads wait, it stays (and holds the lease)
                    return
                woken = asyncio.ensure_future(nudge.wait())
                done, _ = await asyncio.wait(
                    {*threads.values(), woken}, timeout=THREADS_LOOK_EVERY, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
                # Another process's accepts cannot nudge this one: the store is read every THREADS_LOOK_EVERY, however
                # often this process's own mentions or ending threads wake it meanwhile.
                if not done or loop.time() - looked >= THREADS_LOOK_EVERY:
                    looked = loop.time()
                    for thread_ts in await self._store.waiting_threads(*key):
                        wanted[thread_ts] = None
        finally:
            self._nudges.pop(key, None)
            self._thread_wakes.pop(key, None)
            self._thread_tasks.pop(key, None)
            for task in threads.values():
                task.cancel()
            await asyncio.gather(*threads.values(), return_exceptions=True)

    async def _run_thread(self, key: tuple[str, str], thread_ts: str, again: set[str]) -> None:
        try:
            while not self._closing:
                again.discard(thread_ts)
                job = await self._next(key, thread_ts)
                if job is None:
                    if thread_ts in again:  # a turn was accepted into the thread while the query ran
                        continue
                    return
                await self._run_job(key, job)
        except Exception as exc:  # the database failed: the turns stay recorded for the sweep
            log.warning("thread worker stopped binding=%s:%s error=%s", *key, type(exc).__name__)

    async def _run_next(self, key: tuple[str, str]) -> bool:
        """Run the binding's oldest unfinished turn; False when there is none."""
        job = await self._next(key)
        if job is None:
            return False
        await self._run_job(key, job)
        return True

    async def _run_job(self, key: tuple[str, str], job: Job) -> None:
        thread = (job.turn.team_id, job.turn.channel_id, job.turn.thread_ts)
        # Its thread's queue notice is left as it is only once the turn goes to the agents; until the run says
        # how it ends, the notice waits for that.
        with self.notices.taking(thread) as going:
            job = replace(job, going=going)
            status = await self._runs.run(key, job, self._fresh.pop(job.otid, ""))
            if status == "unbound":  # its thread's queue notice, if any, no longer promises an answer
                self.notices.unbound(thread)

    async def _poster_of(self, team_id: str) -> SlackPoster:
        """The poster for the workspace's threads (one in single-workspace mode; see workspace_relay.WorkspaceRelay)."""
        return self._poster

    async def stop(self, grace: float) -> None:
        """Stop taking work, let running turns finish within `grace` seconds, then cancel what is left.

        A cancelled turn stays recorded as running and is resumed by the next start (or, sharing a database,
        by another process as soon as this one has let its lease go).
        """
        self._closing = True
        await self._depth.stop()
        await self.notices.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                # A cancelled turn's clean-up may wait on its server (an App Server's aborted turn ends only when
                # its model call returns): cut short after CANCELLED_WAIT, or the platform's kill comes first.
                # Closing the connection next ends what it waited for.
                _, stuck = await asyncio.wait(pending, timeout=CANCELLED_WAIT)
                for task in stuck:
                    task.cancel()
                if stuck:
                    await asyncio.wait(stuck, timeout=CANCELLED_WAIT)
                log.info("stopped with turns in flight, recorded for the next start count=%d", len(pending))
