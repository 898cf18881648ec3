from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bridge.letta.paging import every
from bridge.tasks import Tasks


@dataclass
class Item:
    id: str


def test_paging_follows_after_until_a_short_page() -> None:
    items = [Item(f"x{i:03d}") for i in range(250)]
    calls: list[tuple[int, str | None]] = []

    async def fetch(limit: int, after: str | None) -> list[Item]:
        calls.append((limit, after))
        start = 0 if after is None else next(i for i, it in enumerate(items) if it.id == after) + 1
        return items[start : start + limit]

    got = asyncio.run(every(fetch, cap=1000))
    assert got == items
    assert calls == [(100, None), (100, "x099"), (100, "x199")]
    assert asyncio.run(every(fetch, cap=120)) == items[:120]


def test_paging_stops_on_an_ignored_or_empty_cursor() -> None:
    """0.11.7 answers [] to any `after` for groups; a server that ignores `after` repeats the first page."""
    first = [Item(f"g{i}") for i in range(100)]

    async def repeats(limit: int, after: str | None) -> list[Item]:
        return first[:limit]

    async def empty_after(limit: int, after: str | None) -> list[Item]:
        return [] if after else first[:limit]

    assert asyncio.run(every(repeats, cap=1000)) == first
    assert asyncio.run(every(empty_after, cap=1000)) == first


def test_tasks_run_log_failures_and_stop_cancels_what_is_late(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        tasks = Tasks()
        done: list[str] = []

        async def quick() -> None:
            done.append("quick")

        async def boom() -> None:
            raise RuntimeError("boom")

        async def slow() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                done.append("cancelled")
                raise

        assert tasks.spawn(quick(), "quick") and tasks.spawn(boom(), "boom") and tasks.spawn(slow(), "slow")
        await asyncio.sleep(0.01)
        await tasks.stop(0.05)
        assert len(tasks) == 0
        late = slow()
        assert not tasks.spawn(late, "late")
        return done

    assert asyncio.run(main()) == ["quick", "cancelled"]
    assert "background work failed name=boom" in caplog.text


def test_a_press_is_taken_while_stopping_and_waited_for_until_close() -> None:
    """A Stop or a tool decision pressed while the turns have their grace was refused (and so lost: Slack had its
    ack). A press is taken until `close`, and `stop` waits for one taken while it waits."""

    async def main() -> tuple[list[str], list[bool]]:
        tasks = Tasks()
        done: list[str] = []
        taken: list[bool] = []

        async def work(name: str, seconds: float = 0.0) -> None:
            await asyncio.sleep(seconds)
            done.append(name)

        async def press_later() -> None:
            await asyncio.sleep(0.05)
            taken.append(tasks.spawn(work("plain"), "a lookup"))
            taken.append(tasks.spawn(work("press", 0.1), "stop button", while_stopping=True))

        assert tasks.spawn(work("first", 0.02), "first")
        stopping = asyncio.create_task(tasks.stop(5.0))
        await press_later()
        await stopping
        await tasks.close(5.0)
        taken.append(tasks.spawn(work("late"), "stop button", while_stopping=True))
        return done, taken

    done, taken = asyncio.run(main())
    assert taken == [False, True, False]
    assert done == ["first", "press"], "the press taken while stopping was not waited for"
