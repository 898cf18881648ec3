"""An agent that asks for a tool's approval while the bridge has lost its send, on a real Letta 0.16.8 with Redis
(background runs): whether the bridge re-attaches to the run mid-stream or, restarted, by the send's otid, the
re-attached stream brings the approval request again (reference: redis-approval-stream-resume-by-otid) and the same
card a live send would post decides it (the fake plays this in tests/unit/test_send_recovery.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from bridge.domain import AgentRef, AgentReply, ApprovalRequest, Decision, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.approving import ApproveAll
from tests.real.capture_tools import SHOUT
from tests.real.conftest import Stage
from tests.unit.test_patterns import MemoryJournal, NoTranscript


class Died(Exception):
    """The process was killed before the request's card was recorded."""


class Dying(ApproveAll):
    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        raise Died


@pytest.mark.parametrize("lost", ["restart", "stream"])
def test_an_approval_request_in_a_re_attached_run_gets_its_card_on_real_0_16_8_with_redis(
    stage: Stage, lost: str
) -> None:
    setup = stage.servers["0.16.8+redis"].setup
    finn = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-real"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    # "stream": quiet after its first ping for longer than the read timeout, so the bridge re-attaches mid-send.
    marker = f"[say first] please use tool shout {'[slow 12] ' if lost == 'stream' else ''}{uuid.uuid4().hex[:8]}"
    cards = ApproveAll()
    journal = MemoryJournal()
    journal.otid = str(uuid.uuid4())  # a Redis server maps an otid to its run server-wide

    async def go() -> list[TurnEvent]:
        client = LettaClient(stage.servers["0.16.8+redis"].url, read_timeout=6.0)
        try:
            runner = BridgeRunner(client, patience=1.0)
            target = Target("agents", (AgentRef(finn, "finn"),))
            turn = TurnInput(marker, journal.otid, "maria", approvals=cards)
            if lost == "restart":  # the request came, the process died before its card: the turn is resumed
                with pytest.raises(Died):
                    dying = dataclasses.replace(turn, approvals=Dying())
                    [e async for e in runner.run(target, dying, NoTranscript(), journal)]
            return [e async for e in runner.run(target, turn, NoTranscript(), journal)]
        finally:
            await client.aclose()

    events = asyncio.run(asyncio.wait_for(go(), 120))
    history = setup.history(finn)
    users = [i for i, m in enumerate(history) if m.get("message_type") == "user_message" and marker in str(
        m.get("content"))]
    assert len(users) == 1, f"the mention reached the agent {len(users)} times"
    kinds = [m["message_type"] for m in history[users[0] + 1 :]]
    print(f"0.16.8 + Redis history after the mention ({lost}): {kinds}")
    assert [c.name for r in cards.asked for c in r.calls] == ["shout"], "no card for the request Letta waits on"
    assert kinds.count("approval_request_message") == 1 and "tool_return_message" in kinds, kinds
    assert [e.text for e in events if isinstance(e, AgentReply)] == ["Let me do that.\n\nfinn says hi"], events
