"""A stop's own denial reached Letta and is still in its model step when the process ending the stop reads history:
the Stop's cancel lists the run ended at once while the step goes on (runs-list-after-cancel.json, reference §16),
and the denial, its tool return and the agent's next request are stored only when the step ends (§19). A denial sent
again then would be a second decision, which Letta takes and answers with another LLM turn (§17). Found by review
secKH of 24b6e19 (its test_double_denial, taken over)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.domain import AgentRef, Decision, Target
from bridge.letta.approving import STOPPED, approval_message
from bridge.letta.client import LettaClient
from bridge.letta.exchange import Said, exchange
from bridge.letta.own_runs import OwnSend
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import asking_once, asking_twice, next_answer, waiting_turn


def _denials(letta: FakeLetta) -> list[list[tuple[bool, str | None]]]:
    return [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in letta.approval_decisions()]


async def _stop_ended_while_denial_runs(tmp_path: Path, letta: FakeLetta, finn: str) -> list[Any]:
    """The dead process's denial of finn's request goes to Letta and its step takes 2 s; the Stop cancels finn's run
    half a second in; then the stop is ended. What finn says to the thread's next message."""
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    client, dead = LettaClient(letta.base_url), LettaClient(letta.base_url)
    try:
        turn_id, desk, rows, settings = await waiting_turn(store, client, finn)
        letta.set_delay(finn, 2.0)
        for row in rows:
            assert await desk.store.sending(row.id)
        denial = approval_message(tuple(Decision(r.asked.tool_call_id, False, STOPPED) for r in rows))

        async def in_flight() -> None:
            async for _ in exchange(dead, denial, "finn", True, agent_id=finn):
                pass

        going = asyncio.create_task(in_flight())
        await asyncio.sleep(0.5)
        finns = OwnSend(runs={r["id"] for r in await client.active_runs(finn)})  # the dead process's send's run
        assert await client.cancel_agent(finn, [finns])  # listed ended from here on, its step still going
        assert not await client.active_runs(finn)
        assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
        end = StopEnd(store, TurnStops(store, client, 0), Recorder(), Recorder(True), desk,  # type: ignore[arg-type]
                      settings)  # type: ignore[arg-type]
        await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"),)))
        await going
        letta.set_delay(finn, 0.0)
        return await next_answer(client, finn)
    finally:
        await client.aclose()
        await dead.aclose()
        await store.close()


def test_a_stop_denial_still_in_its_step_is_not_sent_again(tmp_path: Path) -> None:
    """The stop's end never denies again a request whose denial it recorded as sent: Letta got exactly one."""
    with FakeLetta(version="0.16.8") as letta:
        later = asyncio.run(_stop_ended_while_denial_runs(tmp_path, letta, asking_once(letta)))
        denials = _denials(letta)
    assert denials == [[(False, STOPPED)]], denials
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later


def test_a_request_asked_when_a_stop_denials_step_ends_is_denied_once_by_the_stops_end(tmp_path: Path) -> None:
    """The request finn makes when that step ends (after the denial's tool return) is found, recorded and denied
    once; the thread's next message is answered."""
    with FakeLetta(version="0.16.8") as letta:
        later = asyncio.run(_stop_ended_while_denial_runs(tmp_path, letta, asking_twice(letta)))
        denials = _denials(letta)
    assert denials == [[(False, STOPPED)]] * 2, denials
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later
