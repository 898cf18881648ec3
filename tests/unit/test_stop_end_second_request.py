"""A turn whose agent asked twice in one send (approved the first, the second card waiting), killed, then
stopped: the process ending the stop must deny the second request on Letta, or 0.16.8 refuses every later message
to the agent (409 PENDING_APPROVAL). Found by review revDJ."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.domain import AgentRef, Target
from bridge.letta.client import LettaClient
from bridge.letta.exchange import Said, exchange
from bridge.letta.wire import user_message
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from bridge.store.approvals import Asked
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import waiting_turn


def test_second_request_of_a_step_is_denied_when_the_stop_is_ended_elsewhere(tmp_path: Path) -> None:
    async def main(letta: FakeLetta, finn: str) -> tuple[list[dict[str, Any]], list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            # The agent's second request of the send, pending on Letta (its first was approved and answered), its
            # card posted, waiting, when the process died.
            turn_id, desk, _, settings = await waiting_turn(store, client, finn)
            # The first request of the same step (the send's key is the agent's id): decided, sent, settled.
            asked = await desk.store.ask([Asked(turn_id, finn, "call_first", "T1", "C1", "1.000001", finn, "finn",
                                                None, "message-first", "shout", "{}", "U1")])
            [first] = [r for r in asked if r.asked.tool_call_id == "call_first"]
            await desk.store.card_posted(first.id, "4.000001")
            await desk.store.decide(first.id, "U1", True, "")
            await desk.store.sending(first.id)
            await desk.store.settle(first.id, "sent")
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            poster, sessions = Recorder(), Recorder(True)
            end = StopEnd(store, TurnStops(store, client, 0), poster, sessions, desk, settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"),)))
            decisions = letta.approval_decisions()
            later = [s async for s in exchange(client, user_message("next", "otid-y", "maria"), "finn", True,
                                               agent_id=finn)]
            return decisions, later
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, ("shout", '{"message": "hi"}'))
        decisions, later = asyncio.run(main(letta, finn))
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, "the turn was stopped")]
    ], decisions
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later
