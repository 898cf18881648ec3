"""bridge/relay.py: a turn accepted in this process is run as fresh (not resumed) and logged with the request that
brought it, even when a worker already running for its binding takes it the moment its row is committed, before
the accepting coroutine has run again; a binding whose threads run at once keeps running them at once whatever
the timing of an accept; a waiting thread gets one queue notice, however its mentions arrive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bridge.relay as relay_module
from bridge.domain import Turn
from bridge.logs import log_context
from bridge.relay import Relay
from bridge.store.base import Store, open_store
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
    """Runs nothing: holds the first turn until told to go on, records each job it is given, and finishes it in
    the store as the real worker does."""

    def __init__(self, store: Store, parallel: bool = False) -> None:
        self.store = store
        self.jobs: list[Job] = []
        self.go_on = asyncio.Event()

        async def in_parallel(team_id: str, channel_id: str) -> bool:
            return parallel

        self.threads = SimpleNamespace(in_parallel=in_parallel)

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        if len(self.jobs) == 1:
            await self.go_on.wait()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


def test_a_turn_taken_by_a_running_worker_before_its_accept_returns_is_fresh(tmp_path: Path) -> None:
    async def main() -> list[tuple[int, bool]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        late = LateAccepts(store)
        worker = Worker(store)
        relay = Relay(late, worker, None, max_concurrent=4)  # type: ignore[arg-type]  # doubles
        try:
            await relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "first", "Ev1"))
            while not worker.jobs:
                await asyncio.sleep(0.01)  # the binding's worker runs the first turn, and holds it
            late.late = True
            with log_context(request_id="req-second"):
                second = asyncio.ensure_future(
                    relay.accept(Turn("T1", "C1", "2.000001", "2.000001", "U1", "second", "Ev2"))
                )
                await asyncio.sleep(0.05)  # the second row is committed; its accept has not returned
            worker.go_on.set()
            while len(worker.jobs) < 2:
                await asyncio.sleep(0.01)
            await second
            return [(job.turn_id, job.resumed) for job in worker.jobs]
        finally:
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == [(1, False), (2, False)]


class ThreadWorker(Worker):
    """A binding whose threads run at once: each turn is held until its text is released."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, parallel=True)
        self.release: dict[str, asyncio.Event] = {}

    def let_go(self, text: str) -> None:
        self.release.setdefault(text, asyncio.Event()).set()

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        await self.release.setdefault(job.turn.text, asyncio.Event()).wait()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


def test_threads_keep_running_at_once_after_a_turn_is_committed_as_their_loop_ends(tmp_path: Path) -> None:
    """Before, a turn committed between a thread's last turn and the end of the threads' loop was run by the
    binding's one-at-a-time loop, and every other thread's mention waited behind it."""

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        late = LateAccepts(store)
        worker = ThreadWorker(store)
        relay = Relay(late, worker, None, max_concurrent=8)  # type: ignore[arg-type]  # doubles
        try:
            await relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "A1", "Ev1"))
            while not worker.jobs:
                await asyncio.sleep(0.01)
            late.late = True  # B1's row is committed; its accept returns a moment later
            b1 = asyncio.ensure_future(relay.accept(Turn("T1", "C1", "2.000001", "2.000001", "U1", "B1", "Ev2")))
            await asyncio.sleep(0.05)
            worker.let_go("A1")  # thread A's last turn ends meanwhile
            await b1
            late.late = False
            await asyncio.sleep(0.1)
            await relay.accept(Turn("T1", "C1", "3.000001", "3.000001", "U1", "C1", "Ev3"))  # a third thread
            await asyncio.sleep(0.3)
            return [job.turn.text for job in worker.jobs]
        finally:
            for text in ("A1", "B1", "C1"):
                worker.let_go(text)
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == ["A1", "B1", "C1"], "C1's thread does not wait for B1's"


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


def test_a_mention_into_a_thread_whose_notice_is_being_posted_gets_no_second_notice(tmp_path: Path) -> None:
    async def main() -> list[tuple[str, str]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        worker = Worker(store)
        poster = SlowPoster()
        relay = Relay(store, worker, poster, max_concurrent=4)  # type: ignore[arg-type]  # doubles
        try:
            await relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "busy", "Ev1"))
            while not worker.jobs:
                await asyncio.sleep(0.01)  # the channel's worker holds the first turn
            await relay.accept(Turn("T1", "C1", "2.000001", "2.000001", "U2", "a", "Ev2"))
            await asyncio.sleep(0.1)  # its thread's notice is being posted
            await relay.accept(Turn("T1", "C1", "2.000002", "2.000001", "U2", "b", "Ev3"))  # the same thread
            await asyncio.sleep(1.5)
            return poster.posts
        finally:
            worker.go_on.set()
            await relay.stop(1.0)
            await store.close()

    [(thread_ts, text)] = asyncio.run(main())
    assert thread_ts == "2.000001" and "1 earlier message" in text


def test_no_queue_notice_starts_once_the_notices_are_stopped(tmp_path: Path) -> None:
    """An accept that began before the bridge stopped (Socket Mode has no ingress to close first) starts no
    notice task that nothing would cancel."""

    async def main() -> tuple[list[tuple[str, str]], bool]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        worker = Worker(store)
        poster = SlowPoster()
        relay = Relay(store, worker, poster, max_concurrent=4)  # type: ignore[arg-type]  # doubles
        try:
            await relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "busy", "Ev1"))
            while not worker.jobs:
                await asyncio.sleep(0.01)
            await relay.notices.stop()
            relay.notices.waiting(Turn("T1", "C1", "2.000001", "2.000001", "U2", "late", "Ev2"))
            await asyncio.sleep(0.5)
            return poster.posts, relay.notices._task is None
        finally:
            worker.go_on.set()
            await relay.stop(1.0)
            await store.close()

    posts, no_task = asyncio.run(main())
    assert posts == [] and no_task


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
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


def test_a_turn_whose_run_fails_runs_again_in_its_place_then_is_left_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, one failed run (a database blip) left the turn for the next start, and the turns after it ran
    first."""
    monkeypatch.setattr(relay_module, "CRASH_PAUSES", (0.05, 0.05))

    async def main(crashes: dict[str, int]) -> list[tuple[str, bool]]:
        store = open_store(f"sqlite:///{tmp_path / (str(len(crashes)) + str(sum(crashes.values())) + '.db')}")
        await store.open()
        worker = CrashingWorker(store, crashes)
        relay = Relay(store, worker, None, max_concurrent=4)  # type: ignore[arg-type]  # doubles
        try:
            for n, text in enumerate(("first", "second"), start=1):
                await relay.accept(Turn("T1", "C1", f"{n}.000001", f"{n}.000001", "U1", text, f"Ev{n}"))
            while not any(job.turn.text == "second" for job in worker.jobs):
                await asyncio.sleep(0.01)
            return [(job.turn.text, job.resumed) for job in worker.jobs]
        finally:
            await relay.stop(1.0)
            await store.close()

    once = asyncio.run(main({"first": 1}))
    assert once == [("first", False), ("first", True), ("second", False)]
    always = asyncio.run(main({"first": 99}))
    assert always == [("first", False), ("first", True), ("first", True), ("second", False)]


def test_a_new_thread_accepted_by_another_process_starts_beside_the_holders_running_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on one database. Process A holds the binding and runs thread 1 (a long turn: a tool call
    waiting for approval, say); a mention in thread 2 reaches process B, which cannot take the binding and leaves
    the turn to A. Before, A started it only when all its running threads were done."""
    from bridge.store.leases import BindingLeases

    monkeypatch.setattr(relay_module, "THREADS_LOOK_EVERY", 0.2)

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        worker_a, worker_b = ThreadWorker(store), ThreadWorker(store)
        relay_a = Relay(store, worker_a, None, 8, leases=BindingLeases(store, 3.0, "web.1"))  # type: ignore[arg-type]
        relay_b = Relay(store, worker_b, None, 8, leases=BindingLeases(store, 3.0, "web.2"))  # type: ignore[arg-type]
        for relay in (relay_a, relay_b):
            relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
        try:
            await relay_a.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "thread-1", "Ev1"))
            while not worker_a.jobs:
                await asyncio.sleep(0.01)
            await relay_b.accept(Turn("T1", "C1", "2.000001", "2.000001", "U1", "thread-2", "Ev2"))
            await asyncio.sleep(1.0)  # less than the lease: process A is alive and holds the binding
            return [job.turn.text for job in worker_a.jobs + worker_b.jobs]
        finally:
            for worker in (worker_a, worker_b):
                for text in ("thread-1", "thread-2"):
                    worker.let_go(text)
            await relay_a.stop(1.0)
            await relay_b.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == ["thread-1", "thread-2"]
