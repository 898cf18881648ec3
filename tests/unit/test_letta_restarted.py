"""A turn resumed after Letta and the bridge restarted together mid-send (revBL): Letta lists the lost send's run as
going for ever. The bridge must neither wait on it until the turn's deadline nor ask the agent again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bridge.domain import AgentFailure, AgentRef, AgentReply, StepRecord, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


def test_a_send_lost_in_a_letta_restart_ends_its_agents_part_and_the_turn_goes_on() -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")))
        journal = MemoryJournal()
        # The bridge died while alice's send ran; Letta died with it and lists that run as going for ever.
        journal.steps[alice] = StepRecord("sending", since=datetime.now(UTC) - timedelta(minutes=1))
        letta.restarted_mid_send(alice)

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url)
            try:
                runner = BridgeRunner(client, patience=1.0)
                turn = TurnInput("hi all", OTID, "maria")
                return [e async for e in runner.run(target, turn, NoTranscript(), journal)]
            finally:
                await client.aclose()

        events = asyncio.run(asyncio.wait_for(go(), 15))
        failures = [e for e in events if isinstance(e, AgentFailure)]
        assert [f.agent_name for f in failures] == ["alice"]
        assert "not asked again" in failures[0].message and "nothing has moved" in failures[0].message
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["bob says hi"]
        assert len(letta.sends()) == 1, "alice was asked a second time"
        assert not [m for m in letta.history.get(alice, []) if m.get("message_type") == "user_message"]
        assert journal.steps[alice].state == "answered"  # a later restart does not ask her again either
