"""bridge_turns_total adds up to the turns accepted: a turn withdrawn before it ran (its mention deleted while it
waited, bridge/relay.py's `withdraw`) is counted once, as `withdrawn`, whether the binding's worker had not yet
read it or had read it and was waiting for a turn slot. The relay and the store (a real SQLite file) are the real
ones; the worker is a stand-in that ends a turn as bridge/turns.py does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.metrics import Metrics
from bridge.relay import Relay
from bridge.store.base import Store
from bridge.store.database_url import open_store
from bridge.store.leases import BindingLeases
from bridge.turns import Job
from tests.unit.test_relay import ThreadWorker, Worker, mention, until


class Marking(ThreadWorker):
    """Marks each turn running before it runs it, as TurnWorker._take does: a turn no longer waiting (withdrawn
    or stopped since the worker read it) is not run, and ends `stopped`."""

    async def run(self, job: Job) -> str:
        if not await self.store.set_turn_status(job.turn_id, "running"):
            return "stopped"
        return await super().run(job)


def counted(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "bridge_turns_total"
    }


async def relay_on(store: Store, worker: Worker, metrics: Metrics, max_concurrent: int) -> Relay:
    return Relay(store, worker, None, max_concurrent=max_concurrent, leases=BindingLeases(store, 3.0), metrics=metrics)  # type: ignore[arg-type]


def test_a_turn_withdrawn_before_its_worker_read_it_is_counted_withdrawn(tmp_path: Path) -> None:
    """The usual case: the mention waited behind another turn of its channel and was deleted. Before, it was
    never counted: bridge_turns_total fell one short of the turns accepted."""

    async def main() -> dict[str, float]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        metrics, worker = Metrics(), Worker(store)
        relay = await relay_on(store, worker, metrics, 8)
        try:
            await relay.accept(mention(1, "first"))
            await until(lambda: bool(worker.jobs))  # the channel's worker holds the first turn
            await relay.accept(mention(2, "second"))
            await relay.withdraw("T1", "C1", "2.000001")
            worker.finish()
            await until(lambda: "done" in counted(metrics))
            await asyncio.sleep(0.1)
            assert worker.texts() == ["first"]
            return counted(metrics)
        finally:
            worker.finish()
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == {"done": 1.0, "withdrawn": 1.0}


def test_a_turn_withdrawn_while_its_job_waited_for_a_slot_is_counted_once(tmp_path: Path) -> None:
    """Threads at once, one turn slot: thread B's turn was read and waited for the slot thread A's turn held when
    its mention was deleted. It is not run; counted as withdrawn, and not a second time as stopped."""

    async def main() -> dict[str, float]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        metrics, worker = Metrics(), Marking(store)
        relay = await relay_on(store, worker, metrics, 1)
        relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
        try:
            await relay.accept(mention(1, "A1"))
            await until(lambda: bool(worker.jobs))  # A1 holds the one slot
            await relay.accept(mention(2, "B1"))
            await asyncio.sleep(0.2)  # B1's thread has read it, and waits for the slot
            await relay.withdraw("T1", "C1", "2.000001")
            worker.let_go("A1")
            await until(lambda: sum(counted(metrics).values()) >= 2)
            await asyncio.sleep(0.2)
            assert worker.texts() == ["A1"]
            return counted(metrics)
        finally:
            worker.finish()
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == {"done": 1.0, "withdrawn": 1.0}
