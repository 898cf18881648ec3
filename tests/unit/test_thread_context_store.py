"""Which earlier turns of a thread count as having given the agents its context, on both backends."""

from __future__ import annotations

from bridge.domain import AgentFailure, AgentReply, Turn
from bridge.store import Store
from tests.unit.test_store import run


def test_only_an_earlier_turn_an_agent_answered_counts(database_url: str) -> None:
    """An unbound turn (no step), a refused one (its step failed with nothing said) and one still in flight
    (`sending`) never brought the thread's earlier messages to an agent; one answered turn did."""

    async def body(store: Store) -> None:
        ids = []
        for n in range(5):
            turn = Turn("T1", "C1", f"1.00000{n + 1}", "1.000000", "U1", f"m{n}", f"Ev{n}")
            made = await store.accept_turn(turn, f"o{n}")
            assert made is not None
            ids.append(made)
        unbound, refused, sending, answered, now = ids
        await store.step_sending(refused, "agent-a")
        await store.step_answered(refused, "agent-a", [], AgentFailure("alice", "unreachable", "network"), None)
        await store.step_sending(sending, "agent-a")
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", now) == 0
        await store.step_sending(answered, "agent-a")
        await store.step_answered(answered, "agent-a", [AgentReply("alice", "hi", "agent-a")], None, None)
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", now) == 1
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", answered) == 0
        assert unbound

    run(database_url, body)
