"""bridge/presence.py: the working signs go out only after the delay, are taken back only when shown, and a
cancelled turn sends no more of them."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.config import Settings
from bridge.presence import Presence, SignBudget, thinking


class Recorder:
    """Stands in for both the poster and the sessions: each call noted in order."""

    def __init__(self, pause: float = 0.0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.pause = pause

    async def react(self, channel: str, ts: str, name: str) -> None:
        self.calls.append(("react", name))
        await asyncio.sleep(self.pause)

    async def unreact(self, channel: str, ts: str, name: str) -> None:
        self.calls.append(("unreact", name))

    async def offer_stop(self, channel: str, thread_ts: str, user: str) -> None:
        self.calls.append(("stop", user))

    async def status(self, channel: str, thread_ts: str, text: str) -> None:
        self.calls.append(("status", text))


def presence(rec: Recorder, after: float) -> Presence:
    fake: Any = rec
    return Presence(fake, fake, "C1", "1.000", "1.000", "U1", "eyes", after)


def test_the_default_delay_is_one_second() -> None:
    assert Settings.model_fields["slack_working_after_seconds"].default == 1.0


def test_thinking_names_the_agents() -> None:
    assert thinking(["alice"]) == "alice is thinking..."
    assert thinking(["alice", "bob", "carol"]) == "alice, bob and carol are thinking..."
    assert thinking([]) == "thinking..."


def test_a_turn_over_before_the_delay_shows_nothing() -> None:
    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        shown = presence(rec, 0.2)
        shown.start(["alice"])
        await asyncio.sleep(0.05)
        await shown.end()
        await asyncio.sleep(0.3)  # the delay has passed: still nothing
        return rec.calls

    assert asyncio.run(main()) == []


def test_a_slow_turn_shows_its_signs_then_takes_them_back() -> None:
    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        shown = presence(rec, 0.05)
        shown.start(["alice", "bob"])
        await asyncio.sleep(0.2)
        await shown.end()
        return rec.calls

    assert asyncio.run(main()) == [
        ("react", "eyes"),
        ("stop", "U1"),
        ("status", "alice and bob are thinking..."),
        ("unreact", "eyes"),
        ("status", ""),
    ]


def test_signs_half_put_up_are_finished_before_they_are_taken_back() -> None:
    async def main() -> list[tuple[str, str]]:
        rec = Recorder(pause=0.1)  # the reaction call is still out when the turn ends
        shown = presence(rec, 0.0)
        shown.start(["alice"])
        await asyncio.sleep(0.02)
        await shown.end()
        return rec.calls

    assert asyncio.run(main()) == [
        ("react", "eyes"),
        ("stop", "U1"),
        ("status", "alice is thinking..."),
        ("unreact", "eyes"),
        ("status", ""),
    ]


def test_a_cancelled_turn_abandons_its_signs() -> None:
    async def main() -> list[tuple[str, str]]:
        rec = Recorder(pause=0.1)
        shown = presence(rec, 0.0)
        shown.start(["alice"])
        await asyncio.sleep(0.02)
        shown.abandon()
        await asyncio.sleep(0.2)
        return rec.calls

    assert asyncio.run(main()) == [("react", "eyes")]


def test_the_sign_budget_allows_a_burst_then_one_a_second() -> None:
    now = [0.0]
    budget = SignBudget(burst=3, per_second=1.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert budget.take() is False
    now[0] = 1.0
    assert budget.take() is True and budget.take() is False
    now[0] = 100.0  # a quiet while refills the burst, no more
    assert [budget.take() for _ in range(4)] == [True, True, True, False]


def test_a_turn_whose_signs_find_the_budget_spent_shows_none() -> None:
    async def main() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        budget = SignBudget(burst=1, per_second=0.001)
        first, second = Recorder(), Recorder()
        fake_first: Any = first
        fake_second: Any = second
        shown = [
            Presence(fake, fake, "C1", "1.000", "1.000", "U1", "eyes", 0.0, budget)
            for fake in (fake_first, fake_second)
        ]
        for p in shown:
            p.start(["alice"])
        await asyncio.sleep(0.05)
        for p in shown:
            await p.end()
        return first.calls, second.calls

    first, second = asyncio.run(main())
    assert [c[0] for c in first] == ["react", "stop", "status", "unreact", "status"]
    assert second == []  # nothing shown, nothing taken back


def test_a_resumed_turn_takes_back_signs_an_earlier_run_may_have_put_up() -> None:
    async def main() -> list[tuple[str, str]]:
        rec = Recorder()
        fake: Any = rec
        shown = Presence(fake, fake, "C1", "1.000", "1.000", "U1", "eyes", 5.0, resumed=True)
        shown.start(["alice"])
        await asyncio.sleep(0.01)
        await shown.end()  # over before its own signs were due
        return rec.calls

    assert asyncio.run(main()) == [("unreact", "eyes"), ("status", "")]
