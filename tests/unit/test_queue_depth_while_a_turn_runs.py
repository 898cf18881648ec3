"""bridge_queue_depth (docs/operations.md: "unfinished turns of a channel as last seen by this process, counted at
most once a second") while the channel's turn runs long: mentions queued behind it must show in the gauge within a
second or so, not only once the running turn has ended (a slow Letta is exactly when an operator watches it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.metrics import Metrics
from bridge.relay import Relay
from bridge.store.database_url import open_store
from bridge.store.leases import BindingLeases
from tests.unit.test_relay import LateAccepts, Worker, mention, relaying, until


def test_mentions_queued_behind_a_long_turn_show_in_the_depth_gauge(tmp_path: Path) -> None:
    """revFG: only the worker's look at its queue updated the gauge, so it stayed at 1 while four mentions waited
    behind a running turn. An accepted mention is a look too, counted at the end of its second."""
    metrics = Metrics()

    def depth() -> float | None:
        return metrics.registry.get_sample_value("bridge_queue_depth", {"binding": "T1:C1"})

    async def main() -> float | None:
        async with relaying(tmp_path / "b.db", Worker, metrics=metrics) as rig:
            await rig.relay.accept(mention(1, "a long one"))
            await asyncio.wait_for(until(lambda: bool(rig.worker.jobs)), 5)  # held: Letta is slow today
            for n in range(2, 6):
                await rig.relay.accept(mention(n, f"queued {n}"))
            await asyncio.sleep(2.5)  # well past "at most once a second"
            seen = depth()
            rig.worker.finish()
            return seen

    assert asyncio.run(main()) == 5.0  # 1 running + 4 waiting


def test_a_burst_of_mentions_costs_the_gauge_one_count_a_second_not_one_per_mention(tmp_path: Path) -> None:
    """Issue 20: no per-mention work that grows with the backlog. Fifty mentions in well under a second, behind a
    running turn, make at most one count at the start of the second and one at its end."""
    counts: list[float] = []

    async def main() -> None:
        async with relaying(tmp_path / "b.db", Worker, metrics=Metrics()) as rig:
            count_unfinished = rig.store.count_unfinished

            async def counted(*args: Any) -> int:
                counts.append(asyncio.get_running_loop().time())
                return await count_unfinished(*args)

            rig.store.count_unfinished = counted  # type: ignore[method-assign]
            await rig.relay.accept(mention(1, "a long one"))
            await asyncio.wait_for(until(lambda: bool(rig.worker.jobs)), 5)
            for n in range(2, 52):
                await rig.relay.accept(mention(n, f"queued {n}"))
            await asyncio.sleep(1.5)
            rig.worker.finish()

    asyncio.run(main())
    assert 1 <= len(counts) <= 3


def test_a_process_without_the_bindings_lease_leaves_no_stale_depth_behind(tmp_path: Path) -> None:
    """secKP: several processes share one database, and mentions reach one that does not hold the binding's lease.
    That process never looks at the binding's queue, so nothing there would set its gauge back to 0 once the lease
    holder has run every turn: it must not count those mentions at all (it said 3 waiting for good)."""
    m1, m2 = Metrics(), Metrics()

    def depth(metrics: Metrics) -> float | None:
        return metrics.registry.get_sample_value("bridge_queue_depth", {"binding": "T1:C1"})

    async def main() -> tuple[float | None, float | None]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        late = LateAccepts(store)
        w1, w2 = Worker(store), Worker(store)
        r1 = Relay(late, w1, None, max_concurrent=8, leases=BindingLeases(store, 3.0, "web.1"), metrics=m1)
        r2 = Relay(late, w2, None, max_concurrent=8, leases=BindingLeases(store, 3.0, "web.2"), metrics=m2)
        try:
            await r1.accept(mention(1, "a long one"))  # web.1 takes the binding's lease and runs it
            await asyncio.wait_for(until(lambda: bool(w1.jobs)), 5)
            for n in range(2, 5):
                await r2.accept(mention(n, f"via web.2 {n}"))  # the load balancer sends these to web.2
            await asyncio.sleep(1.5)
            w1.finish()
            await asyncio.wait_for(until(lambda: len(w1.jobs) + len(w2.jobs) == 4), 10)
            await asyncio.sleep(1.5)
            return depth(m1), depth(m2)
        finally:
            w1.finish()
            w2.finish()
            await r1.stop(1.0)
            await r2.stop(1.0)
            await store.close()

    after1, after2 = asyncio.run(main())
    assert after1 is None  # an empty queue has no series (Metrics.depth)
    assert after2 is None, f"web.2 still says {after2} turns wait on an empty queue"
