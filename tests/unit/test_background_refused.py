"""bridge/letta/client.py stream_conversation: a server found to keep background runs, restarted without Redis since,
refuses `background: true` (503, before any run): the send goes again without it, and every later send too."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import MemoryJournal
from tests.unit.test_send_recovery import play


def test_letta_restarted_without_redis_does_not_fail_every_later_turn() -> None:
    """Found by a review (revAX). 0.16.8 without Redis answers a `background: true` send 503 "Background
    streaming requires Redis to be running" (conversations-background-without-redis.json). The bridge asked once
    per process whether the server keeps runs resumable: after Letta was restarted without Redis, every later turn
    to every agent failed with that 503, saying "Ask again in a moment", until the bridge itself was restarted."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))

        async def go() -> tuple[list[TurnEvent], list[TurnEvent], list[TurnEvent]]:
            client = LettaClient(letta.base_url, retry_base=0.0)
            try:
                first = await play(client, target, MemoryJournal())
                letta.redis = False  # Letta restarted without LETTA_REDIS_HOST (or its Redis went down)
                second = await play(client, target, MemoryJournal())
                third = await play(client, target, MemoryJournal())
                return first, second, third
            finally:
                await client.aclose()

        first, second, third = asyncio.run(go())
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        failures = [e.message for e in (*second, *third) if isinstance(e, AgentFailure)]
        assert not failures, failures
        assert [e.text for e in third if isinstance(e, AgentReply)] == ["alice says hi"]
        assert len(letta.inputs) == 3  # one agent turn per play: the refused send ran nothing and was not a turn
        sent = [bool(r.body.get("background")) for r in letta.sends()]
        assert sent == [True, True, False, False]  # refused once, then without, and without from then on
