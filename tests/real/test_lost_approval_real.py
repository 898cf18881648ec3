"""A send whose stream is lost before its `approval_request_message` arrives, on a real Letta 0.16.8 (no Redis):
the run goes on and asks for approval; the bridge finds the request in history once the run is over, and the same
card a live send would post decides it (the fake 0.16.8 plays this in tests/unit/test_send_recovery.py)."""

from __future__ import annotations

import asyncio
import uuid

from bridge.domain import (
    AgentRef,
    AgentReply,
    Target,
    TurnEvent,
    TurnInput,
)
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.approving import ApproveAll
from tests.real.capture_tools import SHOUT
from tests.real.conftest import Stage
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


def test_an_approval_request_whose_stream_was_lost_gets_its_card_on_real_0_16_8(stage: Stage) -> None:
    server = stage.servers["0.16.8"]
    setup = server.setup
    finn = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-real"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    marker = f"please use tool shout [slow 12] {uuid.uuid4().hex[:8]}"  # quiet for longer than the read timeout
    cards = ApproveAll()

    async def go() -> list[TurnEvent]:
        client = LettaClient(server.url, read_timeout=6.0)
        try:
            runner = BridgeRunner(client, patience=1.0)
            turn = TurnInput(marker, OTID, "maria", approvals=cards)
            target = Target("agents", (AgentRef(finn, "finn"),))
            return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
        finally:
            await client.aclose()

    events = asyncio.run(asyncio.wait_for(go(), 120))
    history = setup.history(finn)
    users = [i for i, m in enumerate(history) if m.get("message_type") == "user_message" and marker in str(
        m.get("content"))]
    assert len(users) == 1, f"the mention reached the agent {len(users)} times"
    kinds = [m["message_type"] for m in history[users[0] + 1 :]]
    print(f"0.16.8 history after the mention: {kinds}")
    assert [c.name for r in cards.asked for c in r.calls] == ["shout"], "no card for the request Letta waits on"
    assert kinds.count("approval_request_message") == 1 and "tool_return_message" in kinds, kinds
    assert [e.text for e in events if isinstance(e, AgentReply)][-1:] == ["finn says hi"], events
