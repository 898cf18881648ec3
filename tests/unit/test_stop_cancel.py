"""A stop of a turn whose earlier run's process was killed (the turn resumed after a restart, or taken over to end
its stop) cancels the Letta send that run began and never saw answered, under the agent's send lock: never a send
another turn is making to the agent. Letta is a double; the store is a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bridge.stopping as stopping
from bridge.domain import AgentRef, Target, Turn
from bridge.letta.locks import AgentLocks
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import open_store

ALICE = AgentRef("agent-00000000-0000-4000-8000-00000000000a", "alice")
BOB = AgentRef("agent-00000000-0000-4000-8000-00000000000b", "bob")
TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


class Letta:
    """Letta's cancel routes, recorded; the client's send locks, as the runners hold them."""

    def __init__(self) -> None:
        self.locks = AgentLocks()
        self.cancels: list[str] = []

    async def has_conversations(self) -> bool:
        return False  # a server without them: the agent route's runs are all the agent's own

    async def cancel_agent(self, agent_id: str, sends: object = ()) -> dict[str, str]:
        self.cancels.append(agent_id)
        return {"run-1": "cancelled"}

    async def cancel_conversation(self, conversation_id: str, agent_id: str | None = None) -> dict[str, str]:
        self.cancels.append(conversation_id)
        return {"run-1": "cancelled"}


@pytest.mark.parametrize("conversation", [None, "conv-alice"], ids=["agent", "conversation"])
def test_a_stop_of_a_resumed_turn_cancels_the_send_its_earlier_run_began_unless_another_send_holds_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversation: str | None
) -> None:
    """After kill -9 and a restart, the resumed turn waits for alice's run (the killed process's send) to end.
    Before, a stop cancelled only the sends this run had made: alice's run went on. Bob's send, journaled by the
    earlier run too, is not cancelled while another channel's send to bob holds his lock: cancelling bob would
    end that send's run instead. Where the thread is alice's Letta conversation, that conversation is cancelled."""
    monkeypatch.setattr(stopping, "LOCK_WAIT", 0.2)

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None
            await store.step_sending(turn_id, ALICE.id)
            await store.step_sending(turn_id, BOB.id)
            if conversation is not None:
                await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, conversation)
            letta = Letta()
            stops = TurnStops(store, letta, 0)  # type: ignore[arg-type]
            running = RunningTurn(turn_id, "T1", "C1", "1.000001", target=Target("agents", (ALICE, BOB)))
            busy, release = asyncio.Event(), asyncio.Event()

            async def other_channel() -> None:
                async with letta.locks.hold([BOB.id]):
                    busy.set()
                    await release.wait()

            holder = asyncio.create_task(other_channel())
            await busy.wait()
            cancelled = await stops.cancel_letta(running)
            release.set()
            await holder
            return cancelled + letta.cancels
        finally:
            await store.close()

    assert asyncio.run(main()) == [conversation or ALICE.id] * 2
