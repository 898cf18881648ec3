"""A turn killed while its card waited, then stopped: the process ending the stop denies the request, and the agent
answers that denial by asking for its next tool. That request is denied too (0.16.8 would keep it pending and
refuse every later message), journaled before it goes, so that a second end of the same stop sends nothing again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.approval_desk import ApprovalDesk
from bridge.domain import AgentRef, Binding, Decision, Target
from bridge.letta.approving import STOPPED, approval_message
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.exchange import Asked as Question
from bridge.letta.exchange import Said, exchange
from bridge.letta.wire import user_message
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from bridge.store.approvals import Approval, Asked
from bridge.store.base import Store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder


def asking_twice(letta: FakeLetta, name: str = "finn") -> str:
    """A new agent (finn) whose model asks for `shout`, and asks again after the decision's tool return."""
    finn = letta.add_agent(name)
    letta.ask_approval(finn, ("shout", '{"message": "hi"}'))
    letta.ask_approval_next(finn, ("shout", '{"message": "second"}'))
    return finn


def asking_once(letta: FakeLetta) -> str:
    """A new agent finn whose model asks for `shout` once."""
    finn = letta.add_agent("finn")
    letta.ask_approval(finn, ("shout", '{"message": "hi"}'))
    return finn


async def denied_unread(
    store: Store, client: LettaClient, finn: str
) -> tuple[int, ApprovalDesk, list[Approval], SimpleNamespace]:
    """`waiting_turn`, whose request a process marked as sent and denied ("the turn was stopped"), the answer read
    whole but journaled nowhere: that process died before it could."""
    turn_id, desk, rows, settings = await waiting_turn(store, client, finn)
    for row in rows:
        assert await desk.store.sending(row.id)
    denial = approval_message(tuple(Decision(r.asked.tool_call_id, False, STOPPED) for r in rows))
    assert [s async for s in exchange(client, denial, "finn", True, agent_id=finn)]
    return turn_id, desk, rows, settings


async def next_answer(client: LettaClient, finn: str, name: str = "finn") -> list[Any]:
    """What the agent says to the thread's next message, or the error Letta refuses it with (409 while a request
    waits)."""
    try:
        return [s async for s in exchange(client, user_message("next", "otid-y", "maria"), name, True, agent_id=finn)]
    except LettaError as error:
        return [error]


async def waiting_turn(
    store: Store, client: LettaClient, finn: str
) -> tuple[int, ApprovalDesk, list[Approval], SimpleNamespace]:
    """finn asked for a tool in the running turn of thread 1.000001, its card posted: (turn id, desk, the rows, the
    settings StopEnd reads)."""
    spoken = [s async for s in exchange(client, user_message("use shout", "otid-x", "maria"), "finn", True,
                                        agent_id=finn)]
    [question] = [s for s in spoken if isinstance(s, Question)]
    await store.put_binding(Binding("T1", "C1", Target("agents", (AgentRef(finn, "finn"),))))
    turn_id = await store.accept_turn(TURN, "otid-1")
    assert turn_id is not None and await store.take_turn(turn_id)
    settings = SimpleNamespace(
        slack_working_reaction="eyes", slack_stopped_reaction="black_square_for_stop", slack_agents={}
    )
    desk = ApprovalDesk(store, settings)  # type: ignore[arg-type]
    rows = await desk.store.ask([Asked(turn_id, finn, c.tool_call_id, "T1", "C1", "1.000001", finn, "finn", None,
                                       question.request_id, c.name, c.arguments, "U1") for c in question.calls])
    await desk.store.card_posted(rows[0].id, "5.000001")
    return turn_id, desk, rows, settings


def test_a_request_asked_in_answer_to_an_ended_stops_denial_is_denied_once(tmp_path: Path) -> None:
    async def main(letta: FakeLetta, finn: str) -> tuple[list[dict[str, Any]], list[Any], list[str]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            turn_id, desk, _, settings = await waiting_turn(store, client, finn)
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            end = StopEnd(store, TurnStops(store, client, 0), Recorder(), Recorder(True), desk,  # type: ignore[arg-type]
                          settings)  # type: ignore[arg-type]
            target = Target("agents", (AgentRef(finn, "finn"),))
            await end.finish(TURN, turn_id, "U9", target)
            await end.finish(TURN, turn_id, "U9", target)  # a second end of the same stop
            journaled = [r.outcome for r in await desk.store.for_turn(turn_id) if r.sent_at is not None]
            later = [s async for s in exchange(client, user_message("next", "otid-y", "maria"), "finn", True,
                                               agent_id=finn)]
            return letta.approval_decisions(), later, [str(o) for o in journaled]
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        finn = asking_twice(letta)
        decisions, later, journaled = asyncio.run(main(letta, finn))
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, "the turn was stopped")]
    ] * 2, decisions
    assert journaled == ["stopped", "stopped"]
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later
