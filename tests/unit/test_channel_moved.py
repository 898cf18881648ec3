"""bridge/relay.py: a channel whose id changed (`channel_id_changed`) while one of its turns ran runs its next turn
once that turn has ended, with what it wrote under the old id moved (docs/guarantees.md): not beside it in another
process sharing the database, nor later than it must, where its threads run at once, in its other threads. The
workers here take their turn in the store (mark it running) as TurnWorker does: a running turn stays under the
old id, which is what the relay must wait for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bridge.domain import AgentRef, Binding, Target, Turn
from bridge.store.base import Store
from bridge.turns import Job
from tests.unit.test_relay import ThreadWorker, Worker, mention, relaying, until, until_done

CREW = Target(kind="group", agents=(AgentRef("agent-a", "alice"),), group_id="group-1")


async def take_then(store: Store, job: Job, run: Callable[[Job], Awaitable[str]]) -> str:
    """TurnWorker's take: by the channel it was read under, and never run without a binding (it would say "not
    connected")."""
    binding = await store.get_binding(job.turn.team_id, job.turn.channel_id)
    if await store.take_turn(job.turn_id, binding, job.turn.channel_id) is None:
        return "not taken"
    assert binding is not None, f"turn {job.turn_id} run with no binding under {job.turn.channel_id}"
    return await run(job)


class TakingWorker(Worker):
    """As test_relay's Worker, but it takes the turn in the store (marks it running) as TurnWorker does."""

    async def run(self, job: Job) -> str:
        return await take_then(self.store, job, super().run)


class TakingThreadWorker(ThreadWorker):
    async def run(self, job: Job) -> str:
        return await take_then(self.store, job, super().run)


def in_g1(n: int, text: str, thread: int | None = None) -> Turn:
    return replace(mention(n, text, thread), channel_id="G1")


def test_a_channel_moved_twice_while_its_turn_runs_runs_its_next_turn_after_it_under_the_last_id(
    tmp_path: Path,
) -> None:
    """channel_id_changed while a turn ran started the waiting turn at once under the new id, beside it, and what
    the running turn wrote under the old id stayed there (its thread took no follow-up). The sweep, which finds the
    waiting turn's binding without a lease, and a second change of id must not start it early either."""

    async def main() -> None:
        async with relaying(tmp_path / "b.db", TakingWorker) as rig:
            await rig.store.put_binding(Binding("T1", "G1", CREW))
            await rig.relay.accept(in_g1(1, "first"))
            await rig.relay.accept(in_g1(2, "second"))
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.channel_moved("T1", "G1", "C1")
            await rig.relay.channel_moved("T1", "C1", "C2")
            await rig.relay.resume()  # the sweep's look for bindings no process holds
            await asyncio.sleep(0.2)
            assert rig.worker.texts() == ["first"], "the next turn started while the channel's turn still ran"
            rig.worker.finish()
            await until(lambda: len(rig.worker.jobs) == 2)
            assert rig.worker.jobs[1].turn.channel_id == "C2"
            await until_done(rig.store)
            assert await rig.store.thread_answered("T1", "C2", "1.000001"), "the running turn stayed under G1"

    asyncio.run(main())


def test_another_process_does_not_start_the_waiting_turn_beside_the_running_one(tmp_path: Path) -> None:
    """The turn runs in the process Slack's event reached (A). Process B, sharing the database, found the new id's
    binding free: its sweep started the waiting turn beside the running one, and so did a mention under the new id
    that reached it. Both run after the running turn, once each."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", TakingWorker, processes=2) as rig:
            a, b = rig.relays
            for relay in rig.relays:
                relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
            await rig.store.put_binding(Binding("T1", "G1", CREW))
            await a.accept(in_g1(1, "first"))
            await a.accept(in_g1(2, "second"))
            await until(lambda: len(rig.workers[0].jobs) == 1)
            await a.channel_moved("T1", "G1", "C1")
            await b.resume()  # process B's sweep (every few seconds)
            await b.accept(mention(3, "third"))  # under the new id
            await asyncio.sleep(0.3)
            assert rig.workers[0].texts() + rig.workers[1].texts() == ["first"], "a turn started beside the running one"
            rig.workers[0].finish()
            await until_done(rig.store)
            return sorted(rig.workers[0].texts() + rig.workers[1].texts())

    assert asyncio.run(main()) == ["first", "second", "third"]


def test_threads_of_the_moved_channel_still_run_at_once(tmp_path: Path) -> None:
    """A binding whose threads run at once: thread 1's turn runs (a tool call awaiting approval, say) when the
    channel's id changes. A mention in another thread under the new id starts beside it, as before the change; the
    turn waiting in thread 1 runs after thread 1's running turn, under the new id, with that turn's thread moved."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", TakingThreadWorker) as rig:
            worker = rig.worker
            assert isinstance(worker, ThreadWorker)
            rig.relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
            await rig.store.put_binding(Binding("T1", "G1", CREW))
            await rig.relay.accept(in_g1(1, "A1"))
            await rig.relay.accept(in_g1(2, "A2", thread=1))
            await until(lambda: len(worker.jobs) == 1)
            await rig.relay.channel_moved("T1", "G1", "C1")
            await rig.relay.accept(mention(3, "B1"))  # another thread, under the new id
            await until(lambda: len(worker.jobs) == 2)
            await asyncio.sleep(0.3)
            assert worker.texts() == ["A1", "B1"], "thread 1's waiting turn started beside its running one"
            worker.let_go("A1")
            await until(lambda: len(worker.jobs) == 3)
            assert worker.jobs[2].turn.channel_id == "C1"
            assert await rig.store.thread_answered("T1", "C1", "1.000001"), "thread 1's running turn stayed under G1"
            return worker.texts()

    assert asyncio.run(asyncio.wait_for(main(), 10)) == ["A1", "B1", "A2"]


def test_a_thread_whose_turn_waits_for_a_slot_as_the_channel_moves_keeps_its_order(tmp_path: Path) -> None:
    """Threads at once, every turn slot taken (threads 1 and 3 run): thread 2's first turn, taken by the old id's
    worker, waits for a slot, not yet marked running, when the channel's id changes. Its row moved with the
    channel: the old id's worker gives it up (the binding is the new id's now; run there it told the thread "not
    connected", revCK), and the new id's worker runs it once, under the new id, then thread 2's next turn."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", TakingThreadWorker, max_concurrent=2) as rig:
            worker = rig.worker
            assert isinstance(worker, ThreadWorker)
            rig.relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
            await rig.store.put_binding(Binding("T1", "G1", CREW))
            await rig.relay.accept(in_g1(1, "A1"))
            await until(lambda: len(worker.jobs) == 1)
            await rig.relay.accept(in_g1(3, "X1"))
            await until(lambda: len(worker.jobs) == 2)
            await rig.relay.accept(in_g1(2, "B1"))  # waits for a slot
            await asyncio.sleep(0.1)
            await rig.relay.channel_moved("T1", "G1", "C1")
            await rig.relay.accept(mention(4, "B2", thread=2))
            worker.let_go("A1")
            worker.let_go("X1")
            await until(lambda: len(worker.jobs) == 3)
            await asyncio.sleep(0.3)
            assert worker.texts() == ["A1", "X1", "B1"], "thread 2's turns ran twice, or beside each other"
            assert worker.jobs[2].turn.channel_id == "C1"
            worker.let_go("B1")
            await until(lambda: len(worker.jobs) == 4)
            assert worker.jobs[3].turn.channel_id == "C1"
            return worker.texts()

    assert asyncio.run(asyncio.wait_for(main(), 10)) == ["A1", "X1", "B1", "B2"]
