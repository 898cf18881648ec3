"""TurnStops.check: the store's word on a turn, read once for the checks made at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.stopping import RunningTurn, TurnStopped, TurnStops


class Store:
    """Answers `turn_stopped_by` once let go, counting the reads."""

    def __init__(self, by: str | None) -> None:
        self.by = by
        self.reads = 0
        self.go = asyncio.Event()

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        self.reads += 1
        await self.go.wait()
        return self.by


async def both(by: str | None) -> tuple[Store, list[Any]]:
    store = Store(by)
    stops = TurnStops(store, client=None, poll=0)  # type: ignore[arg-type]  # a double
    running = RunningTurn(7, "T1", "C1", "1.000001")
    checks = [asyncio.ensure_future(stops.check(running)) for _ in range(2)]  # a reply's post, the next agent
    await asyncio.sleep(0.01)
    store.go.set()
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    if by is None:
        await stops.check(running)  # a later check reads again
    return store, outcomes


def test_two_checks_at_once_read_the_turn_once() -> None:
    """A reply's post and the next agent's ask each read the turn's status as the reply came: two reads on the
    reader's thread, the second queued behind the first, on the way to both."""
    store, outcomes = asyncio.run(both(None))
    assert outcomes == [None, None] and store.reads == 2  # one for the pair, one for the later check


def test_a_stop_read_once_stops_both_checks() -> None:
    store, outcomes = asyncio.run(both("U9"))
    assert store.reads == 1
    assert [type(o) for o in outcomes] == [TurnStopped, TurnStopped] and all(o.by == "U9" for o in outcomes)


def test_a_failed_read_fails_both_checks_and_the_next_reads_again() -> None:
    async def main() -> tuple[list[Any], int]:
        store = Store(None)
        failing = True

        async def read(turn_id: int) -> str | None:
            store.reads += 1
            await store.go.wait()
            if failing:
                raise ConnectionError("the database went away")
            return None

        store.turn_stopped_by = read  # type: ignore[method-assign]
        stops = TurnStops(store, client=None, poll=0)  # type: ignore[arg-type]
        running = RunningTurn(7, "T1", "C1", "1.000001")
        checks = [asyncio.ensure_future(stops.check(running)) for _ in range(2)]
        await asyncio.sleep(0.01)
        store.go.set()
        outcomes = await asyncio.gather(*checks, return_exceptions=True)
        failing = False
        await stops.check(running)
        return outcomes, store.reads

    outcomes, reads = asyncio.run(main())
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError] and reads == 2


@pytest.mark.parametrize("cancelled", [0, 1])
def test_a_check_cancelled_while_it_reads_leaves_the_other_its_answer(cancelled: int) -> None:
    async def main() -> Any:
        store = Store("U9")
        stops = TurnStops(store, client=None, poll=0)  # type: ignore[arg-type]
        running = RunningTurn(7, "T1", "C1", "1.000001")
        checks = [asyncio.ensure_future(stops.check(running)) for _ in range(2)]
        await asyncio.sleep(0.01)
        checks[cancelled].cancel()
        store.go.set()
        return (await asyncio.gather(checks[1 - cancelled], return_exceptions=True))[0]

    outcome = asyncio.run(main())
    assert isinstance(outcome, TurnStopped) and outcome.by == "U9"



class ReadAtStart(Store):
    """The row is read as the query starts; the answer comes back once let go (a read queued on the reader)."""

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        self.reads += 1
        seen = self.by
        await self.go.wait()
        return seen


def test_a_check_begun_after_a_stop_was_recorded_sees_it_though_a_read_is_under_way() -> None:
    """revBR: a check shared any read still on its way, one made before a stop it had to see: the next agent
    was asked after the stop was recorded (another process's, or a channel-wide one still cancelling)."""
    async def main() -> Any:
        store = ReadAtStart(None)
        stops = TurnStops(store, client=None, poll=0)  # type: ignore[arg-type]
        running = RunningTurn(7, "T1", "C1", "1.000001")
        flush = asyncio.ensure_future(stops.check(running))  # the flush's check before a slow post
        await asyncio.sleep(0.01)  # its read has run: the turn was not stopped yet
        store.by = "U9"
        ask = asyncio.ensure_future(stops.check(running))  # the next agent's check, begun after the stop
        await asyncio.sleep(0.01)
        store.go.set()
        return await asyncio.gather(flush, ask, return_exceptions=True)

    flush, ask = asyncio.run(main())
    assert flush is None and isinstance(ask, TurnStopped) and ask.by == "U9"
