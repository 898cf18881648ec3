"""What a resumed REST send does when the server no longer says which run carried it: never asked twice."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import AgentRef, AgentReply, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


async def play(client: LettaClient, target: Target, journal: MemoryJournal) -> list[TurnEvent]:
    runner = BridgeRunner(client, patience=1.0)
    return [e async for e in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(), journal)]


def test_a_resumed_send_whose_otid_letta_no_longer_maps_to_a_run_is_looked_up_not_sent_again() -> None:
    """0.16.8 keeps an otid's run in Redis for 3 hours (OTID_RUN_TTL_SECONDS), then answers the re-attach 404 'No
    run found for otid=… The run may have expired or never existed.' A turn resumed after that (the bridge was down
    for the afternoon) took the 404 for 'never reached Letta' and asked the agent a second time."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        journal = MemoryJournal()

        async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
            client = LettaClient(letta.base_url)  # one client: it has found out the server keeps runs resumable
            try:
                first = await play(client, target, journal)
                # The process died before it recorded the answer: the step is still `sending` when the turn resumes.
                since = datetime.now(UTC) - timedelta(minutes=1)
                steps = journal.steps.items()
                journal.steps = {k: dataclasses.replace(r, state="sending", since=since) for k, r in steps}
                expired = S.body("0.16.8", "redis-conversations-stream-resume-unknown-otid")
                letta.fail_next("POST", r"/v1/conversations/default/stream", 404, body=expired)
                return first, await play(client, target, journal)
            finally:
                await client.aclose()

        first, again = asyncio.run(go())
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        assert len(letta.sends()) == 1, "the agent was asked a second time"
        assert [e.text for e in again if isinstance(e, AgentReply)] == ["alice says hi"]


def test_a_stream_that_goes_quiet_after_its_first_event_loses_no_reply() -> None:
    """Letta (without Redis) runs a streamed send to its end when the client goes away: the run is shielded from
    the disconnect, and the reply is stored. The bridge gave up on the quiet stream, said the agent did not
    answer in time, and never showed the reply the agent went on to give: the person asks again (a second turn)."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.0)  # after the first ping, nothing for a second: longer than the read timeout
        target = Target("agents", (AgentRef(alice, "alice"),))

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url, read_timeout=0.3)
            try:
                return await play(client, target, MemoryJournal())
            finally:
                await client.aclose()

        events = asyncio.run(go())
        assert len(letta.sends()) == 1
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["alice says hi"], events


def test_a_gateways_502_to_the_resume_probe_does_not_make_every_later_send_ask_for_a_background_run() -> None:
    """Whether the server keeps runs resumable is asked once (its resume route: 503 without Redis). A 502 from a
    proxy in front of Letta (restarting) was taken for 'resumable' and kept: on a server without Redis, every later
    send asked for a background run and was refused 503 until the bridge restarted."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.fail_next("POST", r"/v1/conversations/default/stream", 502, body={"detail": "Bad Gateway"})

        async def go() -> list[list[TurnEvent]]:
            client = LettaClient(letta.base_url)
            try:
                return [await play(client, target, MemoryJournal()) for _ in range(2)]
            finally:
                await client.aclose()

        first, second = asyncio.run(go())
        assert [e.text for e in second if isinstance(e, AgentReply)] == ["alice says hi"], second
        assert len(letta.sends()) == len([e for e in first + second if isinstance(e, AgentReply)])


@pytest.mark.parametrize("before", [True, False], ids=["redis-lost", "redis-gained"])
def test_a_send_resumed_after_letta_gained_or_lost_redis_is_found_not_made_again(before: bool) -> None:
    """The otid of an agent's first send depends on whether the server keeps background runs (Redis). A process
    that died mid-send and one that resumed the turn after Letta was restarted with (or without) Redis disagreed:
    the lookup used the other otid, found nothing in history, and the agent was asked a second time."""
    with FakeLetta(version="0.16.8", redis=before) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        journal = MemoryJournal()

        async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
            dead, resuming = LettaClient(letta.base_url), LettaClient(letta.base_url)
            try:
                first = await play(dead, target, journal)
                since = datetime.now(UTC) - timedelta(minutes=1)
                steps = journal.steps.items()
                journal.steps = {k: dataclasses.replace(r, state="sending", since=since) for k, r in steps}
                letta.redis = not before  # Letta restarted with (or without) Redis before the turn was resumed
                return first, await play(resuming, target, journal)
            finally:
                await dead.aclose()
                await resuming.aclose()

        first, again = asyncio.run(go())
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        assert len(letta.sends()) == 1, "the agent was asked a second time"
        assert [e.text for e in again if isinstance(e, AgentReply)] == ["alice says hi"]

