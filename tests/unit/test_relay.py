"""bridge/relay.py: a turn accepted in this process is run as fresh (not resumed) and logged with the request that
brought it, even when a worker already running for its binding takes it the moment its row is committed, before
the accepting coroutine has run again; a binding whose threads run at once keeps running them at once whatever
the timing of an accept, or the process that accepted it; a waiting thread gets one queue notice, however its
mentions arrive; a turn whose run fails is run again in its place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bridge.relay as relay_module
import bridge.turn_runs as turn_runs
from bridge.domain import AgentRef, Binding, Target, Turn
from bridge.logs import log_context
from bridge.metrics import UNMETERED, Metrics
from bridge.relay import Relay
from bridge.store.base import Store
from bridge.store.database_url import open_store
from bridge.store.leases import BindingLeases
from bridge.turns import Job


class LateAccepts:
    """The real store, except that `accept_turn` returns a while after its row is committed: what a busy loop
    does to the coroutine waiting on it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.late = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        turn_id = await self._store.accept_turn(turn, otid)
        if self.late:
            await asyncio.sleep(0.2)
        return turn_id


class Worker:
    """Runs nothing: holds the first turn until told to go on, records each job it is given, says it goes to the
    agents and finishes it in the store as the real worker does."""

    def __init__(self, store: Store, parallel: bool = False) -> None:
        self.store = store
        self.jobs: list[Job] = []
        self.go_on = asyncio.Event()

        async def in_parallel(team_id: str, channel_id: str) -> bool:
            return parallel

        self.threads = SimpleNamespace(in_parallel=in_parallel)

    def texts(self) -> list[str]:
        return [job.turn.text for job in self.jobs]

    def expect(self, job: Job) -> None:
        """Nothing to look up ahead."""

    def finish(self) -> None:
        """Let every turn held, or still to come, end (the test is over)."""
        self.go_on.set()

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        job.going()
        if len(self.jobs) == 1:
            await self.go_on.wait()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


class ThreadWorker(Worker):
    """A binding whose threads run at once: each turn is held until its text is let go (or `finish`)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, parallel=True)
        self.release: dict[str, asyncio.Event] = {}

    def let_go(self, text: str) -> None:
        self.release.setdefault(text, asyncio.Event()).set()

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        job.going()
        waits = {asyncio.ensure_future(event.wait()) for event in (self.release.setdefault(job.turn.text,
                                                                                        asyncio.Event()), self.go_on)}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


class CrashingWorker(Worker):
    """Its runs of the turns named in `crashes` raise that many times (the database failing a moment)."""

    def __init__(self, store: Store, crashes: dict[str, int]) -> None:
        super().__init__(store)
        self.crashes = crashes

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        if self.crashes.get(job.turn.text, 0) > 0:
            self.crashes[job.turn.text] -= 1
            raise ConnectionError("the database went away")
        job.going()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


class SlowPoster:
    """Posts queue notices as chat.postMessage does, a round trip later."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        self.edits: list[tuple[str, str]] = []

    def parts(self, agent: object, text: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(text=text)]

    async def post(self, channel: str, thread_ts: str, part: SimpleNamespace, **_: object) -> str:
        await asyncio.sleep(0.3)
        self.posts.append((thread_ts, part.text))
        return f"9.{len(self.posts):06d}"

    async def edit(self, channel: str, ts: str, part: SimpleNamespace, **_: object) -> None:
        self.edits.append((ts, part.text))


@dataclass
class Rig:
    store: Store
    late: LateAccepts  # the store the relays were given
    relays: list[Relay]
    workers: list[Worker]

    @property
    def relay(self) -> Relay:
        return self.relays[0]

    @property
    def worker(self) -> Worker:
        return self.workers[0]


@asynccontextmanager
async def relaying(
    db: Path,
    make_worker: Callable[[Store], Worker],
    poster: object = None,
    processes: int = 1,
    max_concurrent: int = 8,
    metrics: Metrics = UNMETERED,
    default_applies: Callable[[str], bool] = lambda _channel: False,
) -> AsyncIterator[Rig]:
    """Relays (one per process, each its own lease owner) on one SQLite store, each with its own worker; at the
    end every held turn is let go, the relays stopped and the store closed."""
    store = open_store(f"sqlite:///{db}")
    await store.open()
    late = LateAccepts(store)
    workers = [make_worker(store) for _ in range(processes)]
    relays = [
        Relay(late, worker, poster, max_concurrent=max_concurrent, leases=BindingLeases(store, 3.0, f"web.{n}"),  # type: ignore[arg-type]  # doubles
              metrics=metrics, default_applies=default_applies)
        for n, worker in enumerate(workers, start=1)
    ]
    try:
        yield Rig(store, late, relays, workers)
    finally:
        for worker in workers:
            worker.finish()
        for relay in relays:
            await relay.stop(1.0)
        await store.close()


async def until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.01)


def mention(n: int, text: str, thread: int | None = None, user: str = "U1") -> Turn:
    """The `n`th message of channel C1 (in the thread of message `thread`, else its own)."""
    ts = f"{n}.000001"
    return Turn("T1", "C1", ts, f"{thread}.000001" if thread else ts, user, text, f"Ev{n}-{text}")


def test_a_turn_taken_by_a_running_worker_before_its_accept_returns_is_fresh(tmp_path: Path) -> None:
    async def main() -> list[tuple[int, bool]]:
        async with relaying(tmp_path / "b.db", Worker) as rig:
            await rig.relay.accept(mention(1, "first"))
            await until(lambda: bool(rig.worker.jobs))  # the binding's worker runs the first turn, and holds it
            rig.late.late = True
            with log_context(request_id="req-second"):
                second = asyncio.ensure_future(rig.relay.accept(mention(2, "second")))
                await asyncio.sleep(0.05)  # the second row is committed; its accept has not returned
            rig.worker.go_on.set()
            await until(lambda: len(rig.worker.jobs) == 2)
            await second
            return [(job.turn_id, job.resumed) for job in rig.worker.jobs]

    assert asyncio.run(main()) == [(1, False), (2, False)]


def test_threads_keep_running_at_once_after_a_turn_is_committed_as_their_loop_ends(tmp_path: Path) -> None:
    """Before, a turn committed between a thread's last turn and the end of the threads' loop was run by the
    binding's one-at-a-time loop, and every other thread's mention waited behind it."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", ThreadWorker) as rig:
            worker = rig.worker
            assert isinstance(worker, ThreadWorker)
            await rig.relay.accept(mention(1, "A1"))
            await until(lambda: bool(worker.jobs))
            rig.late.late = True  # B1's row is committed; its accept returns a moment later
            b1 = asyncio.ensure_future(rig.relay.accept(mention(2, "B1")))
            await asyncio.sleep(0.05)
            worker.let_go("A1")  # thread A's last turn ends meanwhile
            await b1
            rig.late.late = False
            await asyncio.sleep(0.1)
            await rig.relay.accept(mention(3, "C1"))  # a third thread
            await asyncio.sleep(0.3)
            return worker.texts()

    assert asyncio.run(main()) == ["A1", "B1", "C1"], "C1's thread does not wait for B1's"


def test_a_new_thread_accepted_by_another_process_starts_beside_the_holders_running_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on one database. Process A holds the binding and runs thread 1 (a long turn: a tool call
    waiting for approval, say); a mention in thread 2 reaches process B, which cannot take the binding and leaves
    the turn to A. Before, A started it only when all its running threads were done."""
    monkeypatch.setattr(relay_module, "THREADS_LOOK_EVERY", 0.2)

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", ThreadWorker, processes=2) as rig:
            a, b = rig.relays
            for relay in rig.relays:
                relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
            await a.accept(mention(1, "thread-1"))
            await until(lambda: bool(rig.workers[0].jobs))
            await b.accept(mention(2, "thread-2"))
            await asyncio.sleep(1.0)  # less than the lease: process A is alive and holds the binding
            return rig.workers[0].texts() + rig.workers[1].texts()

    assert asyncio.run(main()) == ["thread-1", "thread-2"]


def test_a_mention_into_a_thread_whose_notice_is_being_posted_gets_no_second_notice(tmp_path: Path) -> None:
    poster = SlowPoster()

    async def main() -> None:
        async with relaying(tmp_path / "b.db", Worker, poster) as rig:
            await rig.relay.accept(mention(1, "busy"))
            await until(lambda: bool(rig.worker.jobs))  # the channel's worker holds the first turn
            await rig.relay.accept(mention(2, "a", user="U2"))
            await asyncio.sleep(0.1)  # its thread's notice is being posted
            await rig.relay.accept(mention(3, "b", thread=2, user="U2"))  # the same thread
            await asyncio.sleep(1.5)

    asyncio.run(main())
    [(thread_ts, text)] = poster.posts
    assert thread_ts == "2.000001" and "1 earlier message" in text


def test_a_turn_starts_without_waiting_for_its_bindings_queue_count(tmp_path: Path) -> None:
    """The depth gauge's count of the binding's queue was read before each turn was handed to its worker (one
    more query before every send, once a second per binding). It runs beside the turn now, and a count that ends
    after the queue was seen empty does not set the gauge back."""
    metrics = Metrics()
    release = asyncio.Event()

    def depth() -> float | None:
        return metrics.registry.get_sample_value("bridge_queue_depth", {"binding": "T1:C1"})

    async def main() -> tuple[float | None, float | None]:
        async with relaying(tmp_path / "b.db", Worker, metrics=metrics) as rig:
            count_unfinished = rig.store.count_unfinished

            async def slow(*args: Any) -> int:
                seen = await count_unfinished(*args)
                await release.wait()
                return seen

            rig.store.count_unfinished = slow  # type: ignore[method-assign]
            await rig.relay.accept(mention(1, "first"))
            await asyncio.wait_for(until(lambda: bool(rig.worker.jobs)), 5)  # while its count is held
            rig.worker.finish()
            await until(lambda: ("T1", "C1") not in rig.relay._workers)  # its worker saw the queue empty
            release.set()  # the count read while the turn ran (1) comes back
            await asyncio.sleep(0.1)
            after_empty = depth()
            await rig.relay.accept(mention(2, "second"))
            await until(lambda: len(rig.worker.jobs) == 2)
            return after_empty, depth()

    after_empty, last = asyncio.run(main())
    assert after_empty is None and last is None


def test_a_stop_with_no_turn_in_flight_neither_waits_for_the_gauge_nor_says_turns_were_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """revBR: the gauge's count ran in a task the relay tracks beside its turns: a stop with none in flight
    waited its whole grace for a slow count, then said turns were left in flight."""

    async def main() -> float:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        worker = Worker(store)
        worker.finish()  # every turn runs straight through
        relay = Relay(store, worker, None, max_concurrent=8, leases=BindingLeases(store, 3.0, "web.1"))  # type: ignore[arg-type]  # doubles
        stuck = asyncio.Event()

        async def slow_count(*args: Any) -> int:  # the database is slow to count (a big table, a busy reader)
            await stuck.wait()
            return 1

        store.count_unfinished = slow_count  # type: ignore[method-assign]
        try:
            await relay.accept(mention(1, "first"))
            await until(lambda: bool(worker.jobs) and ("T1", "C1") not in relay._workers)  # done, worker gone
            loop = asyncio.get_running_loop()
            began = loop.time()
            with caplog.at_level(logging.INFO, logger="bridge.relay"):
                await relay.stop(2.0)
            return loop.time() - began
        finally:
            await store.close()

    took = asyncio.run(main())
    left = [r.getMessage() for r in caplog.records if "turns in flight" in r.getMessage()]
    assert left == [] and took < 2.0  # not the whole grace


def test_no_queue_notice_starts_once_the_notices_are_stopped(tmp_path: Path) -> None:
    """An accept that began before the bridge stopped (Socket Mode has no ingress to close first) starts no
    notice task that nothing would cancel."""
    poster = SlowPoster()

    async def main() -> bool:
        async with relaying(tmp_path / "b.db", Worker, poster) as rig:
            await rig.relay.accept(mention(1, "busy"))
            await until(lambda: bool(rig.worker.jobs))
            await rig.relay.notices.stop()
            rig.relay.notices.waiting(mention(2, "late", user="U2"))
            await asyncio.sleep(0.5)
            return rig.relay.notices._task is None

    assert asyncio.run(main()) and poster.posts == []


@pytest.mark.parametrize(("crashes", "runs"), [
    (1, [("first", False), ("first", True), ("second", False)]),
    (99, [("first", False), ("first", True), ("first", True), ("second", False)]),  # then left for the next start
])
def test_a_turn_whose_run_fails_runs_again_in_its_place_then_is_left_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crashes: int, runs: list[tuple[str, bool]]
) -> None:
    """Before, one failed run (a database blip) left the turn for the next start, and the turns after it ran
    first."""
    monkeypatch.setattr(turn_runs, "CRASH_PAUSES", (0.05, 0.05))

    async def main() -> list[tuple[str, bool]]:
        async with relaying(tmp_path / "b.db", lambda store: CrashingWorker(store, {"first": crashes})) as rig:
            await rig.relay.accept(mention(1, "first"))
            await rig.relay.accept(mention(2, "second"))
            await until(lambda: "second" in rig.worker.texts())
            return [(job.turn.text, job.resumed) for job in rig.worker.jobs]

    assert asyncio.run(main()) == runs


def test_a_turn_that_failed_while_the_database_was_away_runs_once_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres restarting for longer than the pauses between runs (a maintenance, a failover): every run failed
    while it was away, so the turn was left for the next start, which with one web process is the next daily
    restart. Runs made while the database does not answer are not tries: the turn runs again once it answers."""
    monkeypatch.setattr(turn_runs, "CRASH_PAUSES", (0.05, 0.05))
    away = asyncio.Event()

    class Away(Worker):
        async def run(self, job: Job) -> str:
            self.jobs.append(job)
            if away.is_set():
                raise ConnectionError("the database went away")
            return await super().run(job)

    async def main() -> list[tuple[str, bool]]:
        async with relaying(tmp_path / "b.db", Away) as rig:
            rig.worker.finish()
            real_ping = rig.store.ping

            async def ping() -> None:
                if away.is_set():
                    raise ConnectionRefusedError("the database went away")
                await real_ping()

            rig.late.ping = ping  # type: ignore[attr-defined]  # the relay's store answers no ping while away
            away.set()
            await rig.relay.accept(mention(1, "first"))
            await asyncio.sleep(0.6)  # far longer than both pauses
            away.clear()
            await asyncio.wait_for(until_done(rig.store), 5)  # before: never, the turn was set aside
            return [(job.turn.text, job.resumed) for job in rig.worker.jobs]

    runs = asyncio.run(main())
    assert runs[0] == ("first", False) and runs[-1] == ("first", True)


async def until_done(store: Store) -> None:
    while await store.count_unfinished():
        await asyncio.sleep(0.02)


def test_a_follow_up_in_a_channel_no_longer_connected_is_not_a_turn(tmp_path: Path) -> None:
    """After /letta disconnect, people talking on in a thread the bot once answered were each told 'this channel
    is not connected': a reply without a mention asked nobody, so it runs only where something would answer."""

    def reply(n: int, text: str) -> Turn:
        return replace(mention(n, text, thread=1), follow_up=True)

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker) as rig:
            rig.worker.finish()
            crew = Target(kind="group", agents=(AgentRef("agent-a", "alice"),), group_id="group-1")
            await rig.store.put_binding(Binding("T1", "C1", crew))
            await rig.relay.accept(mention(1, "question"))
            await rig.relay.accept(reply(2, "bound: a follow-up"))
            await until(lambda: len(rig.worker.jobs) == 2)
            await rig.store.delete_binding("T1", "C1", actor="U1")
            await rig.relay.accept(reply(3, "unbound: people talking"))
            await asyncio.sleep(0.1)
            return rig.worker.texts()

    assert asyncio.run(main()) == ["question", "bound: a follow-up"]

