"""bridge_queue_depth (docs/operations.md: "unfinished turns of a channel as last seen by this process, counted at
most once a second") while the channel's turn runs long: mentions queued behind it must show in the gauge within a
second or so, not only once the running turn has ended (a slow Letta is exactly when an operator watches it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.metrics import Metrics
from tests.unit.test_relay import Worker, mention, relaying, until


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
