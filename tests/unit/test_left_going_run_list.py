"""A send a killed process left running at Letta (0.16.8 without Redis, the agent's own thread), and the next
process's first send to that agent, whose look at the agent's active runs fails on the way
(bridge/letta/left_runs.py runs_ended): the look is made again for a few seconds, so the send does not go beside
the run it is there to wait out."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.domain import AgentRef, AgentReply, Target, TurnEvent
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import MemoryJournal
from tests.unit.test_resume_probe_failures import ENVOY
from tests.unit.test_send_recovery import play

MESSAGE = {"role": "user", "content": "hi", "otid": "o-1"}


@pytest.mark.parametrize("blip", [False, True], ids=["control", "one-502"])
def test_one_502_to_the_run_list_does_not_let_a_send_go_beside_the_run_a_killed_process_left(blip: bool) -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.set_delay(alice, 2.0)

        async def go() -> list[TurnEvent]:
            dead = LettaClient(letta.base_url)
            killed = asyncio.create_task(play(dead, target, MemoryJournal()))
            while not letta.inputs:  # alice is answering the dead process's send
                await asyncio.sleep(0.05)
            killed.cancel()  # the process dies; Letta goes on with the run
            await asyncio.gather(killed, return_exceptions=True)
            await dead.aclose()
            if blip:
                letta.fail_next("GET", r"/v1/runs/", 502, body={"detail": "Bad Gateway"})
            fresh = LettaClient(letta.base_url)  # the restarted process: every agent may have a run left going
            try:
                return await play(fresh, target, MemoryJournal())
            finally:
                await fresh.aclose()

        events = asyncio.run(go())
        time.sleep(0.2)
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["alice says hi"]
        assert letta.overlaps == [], "alice was asked while the killed process's send still ran"


@pytest.mark.parametrize(("status", "looks_again"), [(502, True), (401, False)], ids=["passing", "refused-key"])
def test_a_run_list_that_keeps_failing_holds_the_send_within_busy_wait_only_when_it_may_pass(
    status: int, looks_again: bool
) -> None:
    """A list that keeps failing on the way is looked at again until `busy_wait`, then the send goes as after a run
    still going; a refused key cannot list runs at all, and looking again would only hold the send for nothing."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.fail_next("GET", r"/v1/runs/", status, body={"detail": "no"}, times=100)

        async def main() -> float:
            client = LettaClient(letta.base_url, busy_wait=1.0)
            started = time.monotonic()
            try:
                await client.send_agent(alice, MESSAGE)
            finally:
                await client.aclose()
            return time.monotonic() - started

        took = asyncio.run(main())
        looks = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert len(letta.sends()) == 1
        assert (len(looks) > 1) is looks_again, looks
        assert took < 4.0


def test_a_run_list_that_cannot_reach_letta_does_not_hold_the_send() -> None:
    """Letta not reached (a gateway's own `no healthy upstream`): the send would not reach it either, so it is made
    at once and its failure said now, not after `busy_wait` (five minutes by default) of looking again."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.fail_next("GET", r"/v1/runs/", 503, raw=b"no healthy upstream", headers=ENVOY, times=100)

        async def main() -> None:
            client = LettaClient(letta.base_url, busy_wait=5.0)
            try:
                await client.send_agent(alice, MESSAGE)
            finally:
                await client.aclose()

        asyncio.run(main())
        looks = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert len(looks) == 1, looks
        assert len(letta.sends()) == 1
