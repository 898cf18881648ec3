from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.store.base import StoreError
from bridge.store.locks import AckFirst, UrgentFirstLock
from bridge.store.sqlite import SqliteStore


def test_urgent_holders_overtake_queued_ones_and_nothing_overlaps() -> None:
    async def main() -> list[str]:
        lock = UrgentFirstLock()
        order: list[str] = []
        inside = 0

        async def hold(name: str, urgent: bool) -> None:
            nonlocal inside
            async with lock.hold(urgent):
                inside += 1
                assert inside == 1, "two holders at once"
                order.append(name)
                await asyncio.sleep(0.01)
                inside -= 1

        first = asyncio.create_task(hold("first", False))
        await asyncio.sleep(0)
        queued = [asyncio.create_task(hold(f"turn-{i}", False)) for i in range(3)]
        await asyncio.sleep(0)
        urgent = asyncio.create_task(hold("event", True))
        await asyncio.gather(first, *queued, urgent)
        return order

    order = asyncio.run(main())
    assert order[0] == "first" and order[1] == "event"
    assert sorted(order[2:]) == ["turn-0", "turn-1", "turn-2"]


def test_turns_give_way_while_slack_is_being_answered() -> None:

    async def main() -> None:
        gate, steps = AckFirst(), list[str]()
        await gate.give_way()  # nothing being answered: no wait

        async def turn_step() -> None:
            await gate.give_way()
            steps.append("turn")

        async with gate.answering():
            waiting = asyncio.create_task(turn_step())
            async with gate.answering():
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert steps == [], "a turn's next step waits for every request in flight"
            steps.append("ack")
        await waiting
        assert steps == ["ack", "turn"]

    asyncio.run(main())


def test_a_second_serving_process_is_refused_whatever_name_it_gives_the_sqlite_file(tmp_path: Path) -> None:
    """The file named through a symlink (a mounted volume linked into the app folder, say): before, each process
    locked `<its name>.lock`, both served one file, and each ran the same channel's turns (leases on SQLite live in
    the process), so every mention was asked and answered twice."""
    real = tmp_path / "data" / "bridge.db"
    real.parent.mkdir()
    link = tmp_path / "bridge.db"
    link.symlink_to(real)
    first = SqliteStore(f"sqlite:///{real}", exclusive=True)
    try:
        with pytest.raises(StoreError, match="another bridge process"):
            SqliteStore(f"sqlite:///{link}", exclusive=True)
    finally:
        asyncio.run(first.close())
