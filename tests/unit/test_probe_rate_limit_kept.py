"""A 429 with a one-second Retry-After on the resume probe (the server's rate limit, not Letta down) is not asked
again through PROBE_AGAIN (RATE_LIMITED is not passing) and is said at once: "Ask again in a few seconds." Yet
`BridgeRunner._probe` kept it for PROBE_FRESH (5 s): the person who asked again after two seconds, past the
Retry-After, was refused with the same words without Letta being asked. Only a failure that went through its
retries is kept."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


def test_asking_again_after_a_short_rate_limit_on_the_probe_is_answered() -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.fail_next("POST", r"/v1/conversations/[^/]+/stream", 429,
                        body={"detail": "Rate limit exceeded"}, headers={"retry-after": "1"}, times=1)

        async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
            client = LettaClient(letta.base_url)
            try:
                runner = BridgeRunner(client, patience=1.0)
                first = [e async for e in runner.run(target, TurnInput("hi", OTID, "maria"), NoTranscript(),
                                                     MemoryJournal())]
                await asyncio.sleep(2.0)  # past the Retry-After: "Ask again in a few seconds"
                again = [e async for e in runner.run(target, TurnInput("hi again", OTID + "-2", "maria"),
                                                     NoTranscript(), MemoryJournal())]
                return first, again
            finally:
                await client.aclose()

        first, again = asyncio.run(go())
        assert any(isinstance(e, AgentFailure) for e in first), first
        refused = [e.message for e in again if isinstance(e, AgentFailure)]
        assert not refused and any(isinstance(e, AgentReply) for e in again), refused
        assert len(letta.sends()) == 1
