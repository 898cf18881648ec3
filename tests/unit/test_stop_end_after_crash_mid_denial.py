"""A process that denied the stopped request A (sent_at marked first, the denial reached Letta) dies before it read
the agent's answer, which asks again (request B, not yet journaled). The process ending the stop finds B in the
agent's history after A's tool return and denies it, so the thread (every channel with LETTA_CONVERSATIONS=false)
takes messages again. Found by review secKA of b79d772."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.domain import AgentRef, Decision, Target
from bridge.letta.approving import STOPPED, approval_message
from bridge.letta.client import LettaClient
from bridge.letta.exchange import Said, exchange
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import asking_twice, next_answer, waiting_turn


def test_a_request_asked_after_a_denial_whose_answer_a_crash_left_unread_is_denied_by_the_stops_end(
    tmp_path: Path,
) -> None:
    """B, known only from history, is recorded and denied with the stop's reason; the next message is answered."""
    async def main(letta: FakeLetta, finn: str) -> list[Any]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            turn_id, desk, rows, settings = await waiting_turn(store, client, finn)
            # The live Stop (Approving.withdraw): A marked as sent, its denial sent and reaching Letta ...
            for row in rows:
                assert await desk.store.sending(row.id)
            denial = approval_message(tuple(Decision(r.asked.tool_call_id, False, STOPPED) for r in rows))
            async for _ in exchange(client, denial, "finn", True, agent_id=finn):
                break  # ... and the process dies before it reads (and journals) the request in the answer
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            end = StopEnd(store, TurnStops(store, client, 0), Recorder(), Recorder(True), desk,  # type: ignore[arg-type]
                          settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"),)))
            return await next_answer(client, finn)
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        finn = asking_twice(letta)
        later = asyncio.run(main(letta, finn))
        decisions = letta.approval_decisions()
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, STOPPED)]
    ] * 2, decisions
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later
